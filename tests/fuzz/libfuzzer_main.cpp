// One libFuzzer binary per reader: RESP_FUZZ_TARGET names the target function (CMake sets it).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  resp::fuzz::RESP_FUZZ_TARGET(data, size);
  return 0;  // libFuzzer reserves other values
}
