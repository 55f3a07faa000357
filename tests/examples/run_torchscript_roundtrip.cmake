# Models from Python to C++ and back: export with Debian's python3-torch, post-train the TorchScript
# files in C++, then load the post-trained generator in Python and check it changed.
file(REMOVE_RECURSE ${OUT})
function(run_ok name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${name}:\n${out}")
endfunction()
run_ok("export (Python)" ${PYTHON} ${SOURCE_DIR}/examples/torchscript/export_models.py --out ${OUT} --teacher-steps 200 --generator-steps 100)
run_ok("post-train (C++)" ${EXE} --models ${OUT} --steps 30 --batch 64)
run_ok("reload (Python)" ${PYTHON} -c "
import torch
a = torch.jit.load('${OUT}/generator.pt')
b = torch.jit.load('${OUT}/generator_post_trained.pt')
z = torch.randn(256, 2)
d = (a(z) - b(z)).abs().max().item()
assert d > 1e-6, 'the post-trained generator equals the exported one'
print('post-trained generator differs from the exported one by up to', d)")
