# A program's error is one line without LibTorch's backtrace: di_run_model on a folder whose weights
# file is garbage must print its clear message and no "frame #N" lines (util/error_report.hpp).
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/unet)
file(WRITE ${WORK}/unet/config.json "{\"_class_name\": \"UNet2DConditionModel\", \"block_out_channels\": [16, 32], \"layers_per_block\": 1, \"cross_attention_dim\": 12, \"attention_head_dim\": 4, \"norm_num_groups\": 8, \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"]}")
# Not a safetensors file at all: its first 8 bytes, read as the header's length, ask for 3.6e18 bytes.
file(WRITE ${WORK}/unet/diffusion_pytorch_model.safetensors "garbage-garbage-garbage")
file(WRITE ${WORK}/inputs.safetensors "not a safetensors file")
execute_process(COMMAND ${EXE} --model ${WORK}/unet --kind unet --inputs ${WORK}/inputs.safetensors --outputs ${WORK}/out.safetensors
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("stderr: ${err}")
if(rc EQUAL 0)
  message(FATAL_ERROR "di_run_model accepted a hostile weights file")
endif()
if(NOT err MATCHES "^di_run_model: ")
  message(FATAL_ERROR "the error does not start with the program's name")
endif()
if(err MATCHES "frame #")
  message(FATAL_ERROR "the error carries LibTorch's backtrace")
endif()
string(REGEX MATCHALL "\n" lines "${err}")
list(LENGTH lines n)
if(n GREATER 1)
  message(FATAL_ERROR "the error is ${n} lines, expected one")
endif()
# With DIFFINSTRUCT_BACKTRACE=1 the backtrace is asked for, and comes.
execute_process(COMMAND ${CMAKE_COMMAND} -E env DIFFINSTRUCT_BACKTRACE=1 ${EXE} --model ${WORK}/unet --kind unet --inputs ${WORK}/inputs.safetensors
                        --outputs ${WORK}/out.safetensors RESULT_VARIABLE rc2 ERROR_VARIABLE err2)
if(NOT err2 MATCHES "frame #" AND NOT err2 MATCHES "Exception raised from")
  message(FATAL_ERROR "DIFFINSTRUCT_BACKTRACE=1 printed no backtrace: ${err2}")
endif()
