// Data parallelism for generation: prompts are assigned to DP replicas by index
// (i % dp == dp_rank), each replica generates its share with its TP group, and the results are
// gathered so that every rank (in particular world rank 0, which writes outputs) holds all of
// them in request order.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "generate/generator.h"

namespace resp {

// Collective over `dp` (and, inside the generator, over its TP group). `stats` (optional)
// receives the counters summed over replicas (seconds: the slowest replica).
std::vector<GenerationResult> generate_data_parallel(Generator& gen,
                                                     std::span<const GenerationRequest> requests,
                                                     Communicator& dp,
                                                     const Generator::ProgressFn& progress = {},
                                                     GenerationStats* stats = nullptr);

// Every rank's byte string, in rank order (all_gather of the lengths, then of the padded bytes).
std::vector<std::string> all_gather_strings(Communicator& comm, const std::string& mine);

}  // namespace resp
