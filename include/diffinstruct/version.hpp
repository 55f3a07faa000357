#pragma once

/// Version of the diffinstruct headers (semantic versioning).
#define DIFFINSTRUCT_VERSION_MAJOR 0
#define DIFFINSTRUCT_VERSION_MINOR 1
#define DIFFINSTRUCT_VERSION_PATCH 0

namespace diffinstruct {
/// Version string, e.g. "0.1.0".
inline constexpr const char* kVersion = "0.1.0";
} // namespace diffinstruct
