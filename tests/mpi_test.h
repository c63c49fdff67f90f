// For gtest binaries started by mpiexec (tests/mpi_test_main.cpp): the MPI runtime every test
// shares. Rules for tests in these binaries: every rank runs every test; do all collectives of
// a test before its ASSERT_* (an early return on one rank would leave the others waiting), and
// check results with EXPECT_* afterwards. The main agrees on failure across ranks after each test.
#pragma once

#include "comm/mpi_communicator.h"

namespace resp::test {

MpiRuntime& mpi_runtime();

}  // namespace resp::test
