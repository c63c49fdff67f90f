// gtest main for every test binary: sets the environment that tests starting MPI need when
// run as root in CI (explicit values from the caller win), then runs the tests.
#include <gtest/gtest.h>

#include <omp.h>

#include <cstdlib>

int main(int argc, char** argv) {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  setenv("OMPI_MCA_pml", "ob1", 0);
  setenv("OMPI_MCA_btl", "self,vader", 0);
  setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
  // One thread per process: ctest runs tests in parallel on small machines, and OpenMP
  // barriers of oversubscribed processes spin for milliseconds. Backend tests that need several
  // threads ask for them explicitly.
  if (!std::getenv("OMP_NUM_THREADS")) {
    setenv("OMP_NUM_THREADS", "1", 0);
    omp_set_num_threads(1);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
