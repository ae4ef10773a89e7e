// Data-parallel collectives across the processes of an MPI job (kx.dist): all-reduce, broadcast and
// barrier over lists of tensors, in place. CPU tensors go through MPI, CUDA tensors through NCCL
// (whose unique id travels over MPI); both libraries are opened at run time, so the addon builds
// and loads without them and a missing one is E_NO_MPI naming what to install.
//
// Every collective runs on one communication thread, in the order the calls were made, so a call
// returns a ticket at once and the caller computes on (the backward pass overlaps the all-reduce of
// the gradients already done); `wait` blocks for a ticket and fails with E_DIST when it has not
// finished within the timeout (a rank died or stopped), rather than hang. After such a failure the
// communicator is broken: every later call fails at once, and the process must exit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kx/tensor.h"

namespace kx::dist {

struct World {
  int rank = 0;
  int size = 1;
  std::string library;  // the MPI library's version line, e.g. "Open MPI v4.1.4, ..."
};

// Opens MPI and joins the job (MPI_Init_thread on the communication thread); once per process,
// later calls return the same world. E_NO_MPI when libmpi cannot be opened or is not Open MPI.
// Without MPI (with_mpi false): a world of this process alone, whose collectives leave CPU tensors
// as they are and still run CUDA ones through NCCL (a clique of one).
World init(bool with_mpi);
bool initialized();

enum class ReduceOp { Sum, Mean };

// What a finished collective cost: the communication thread's time on it (ms).
struct Timing {
  double busy_ms = 0;
};

// Queues a collective over `tensors` (all on one device; float32 or int32 for all-reduce, any dtype
// for broadcast) in buckets of at most `bucket_bytes`, and returns its ticket. The tensors are
// written in place and must not be read or written until the ticket has been waited for.
uint64_t start_all_reduce(std::vector<Tensor> tensors, ReduceOp op, size_t bucket_bytes);
uint64_t start_broadcast(std::vector<Tensor> tensors, int root, size_t bucket_bytes);
uint64_t start_barrier();
// Blocks until the ticket's collective is done (for CUDA tensors: queued on the compute stream);
// E_DIST if it failed or did not finish within timeout_ms.
Timing wait(uint64_t ticket, double timeout_ms);
// Leaves the job (MPI_Finalize) when no collective failed; a broken communicator is left as it is,
// so that the launcher sees the process end without finalizing and stops the others.
void finalize();

}  // namespace kx::dist
