// The CPU kernels for ISA level baseline: no ISA flags: the portable path, and the only one on
// non-x86 hosts.
#define RESP_ISA_NS isa_baseline
#define RESP_ISA_LEVEL 0

#include "backend/cpu/attention_impl.h"
