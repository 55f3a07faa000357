#pragma once

// One macro so that math helpers shared by the CPU and CUDA kernels compile under g++ and nvcc.
#if defined(__CUDACC__) || defined(__HIPCC__)
#define DIFFINSTRUCT_HOST_DEVICE __host__ __device__
#else
#define DIFFINSTRUCT_HOST_DEVICE
#endif

// C++20 concepts are used for the policy contracts when available; C++17 uses the traits alone.
#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
#define DIFFINSTRUCT_HAS_CONCEPTS 1
#else
#define DIFFINSTRUCT_HAS_CONCEPTS 0
#endif
