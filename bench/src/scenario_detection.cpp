#include "harness.hpp"
namespace rrh::bench {
scenario_result run_detection(const options&) { throw scenario_failure{"not yet"}; }
}  // namespace rrh::bench
