// HDF5 files described as JSON, for structure-aware fuzzing of resp's HDF5 readers.
//
// Mutating the bytes of an HDF5 file mostly fuzzes libhdf5's own parser, which is not hardened
// against hostile files (it hangs and crashes within a few hundred mutants: docs/fuzzing.md)
// and which resp cannot fix. The run checkpoint and scores targets therefore take a description
// of the file's contents, build a well-formed HDF5 file from it with the HDF5 API and hand that
// to the reader: every mutant reaches resp's own checks (types, shapes, counts, ids, digests).
//
//   {"digest": "valid" | "none" | "stale",
//    "attrs": {"/": {"format": "resp-run", "iteration": 3, "mean_loss": 0.5, ...}, "/traces":
//    {..}}, "datasets": {"/traces/tokens": {"type": "i32", "shape": [12], "data": [1, 2, ...]},
//    ...}}
//
// Attribute values: a string (UTF-8 variable-length string), an integer (int64), a float
// (double), a list of numbers (1-D int64 or double). Dataset types: i32, i64, f32, f64, str
// (a scalar string). A dataset whose shape holds more elements than a bound set by the input
// size is created without data (HDF5 then reads its fill value), so a tiny description can
// declare an absurdly large dataset, as a corrupt file can. "valid" seals the digest resp
// verifies, "stale" writes a wrong one, "none" leaves it out (files from before digests).
#pragma once

#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace resp::fuzz {

// Writes the file. Returns false when the description itself is malformed (not an object,
// unknown type, a rank above 8, a path HDF5 refuses): the input is then skipped, not a finding.
// `max_elements` bounds the elements written per dataset.
bool build_h5(const nlohmann::json& description, const std::filesystem::path& path,
              size_t max_elements);

// The description of an existing file (attributes and datasets; resp_digest left out, "digest"
// set to "valid").
nlohmann::json describe_h5(const std::filesystem::path& path);

}  // namespace resp::fuzz
