# Models from Python to C++ and back: export with Debian's python3-torch, post-train the TorchScript
# files in C++, then load the post-trained generator in Python and check it changed.
file(REMOVE_RECURSE ${OUT})
include(${CMAKE_CURRENT_LIST_DIR}/../run_step.cmake)
run_step("export (Python)" ${PYTHON} ${SOURCE_DIR}/examples/torchscript/export_models.py --out ${OUT} --teacher-steps 200 --generator-steps 100)
run_step("post-train (C++)" ${EXE} --models ${OUT} --steps 30 --batch 64)
run_step("reload (Python)" ${PYTHON} -c "
import torch
a = torch.jit.load('${OUT}/generator.pt')
b = torch.jit.load('${OUT}/generator_post_trained.pt')
z = torch.randn(256, 2)
d = (a(z) - b(z)).abs().max().item()
assert d > 1e-6, 'the post-trained generator equals the exported one'
print('post-trained generator differs from the exported one by up to', d)")
