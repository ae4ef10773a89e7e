// kx::dist (see communicator.h): Open MPI opened with dlopen, one communication thread, buckets.
#include "collective/communicator.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "cuda/api.h"
#include "collective/mpi_abi.h"
#include "kx/error.h"

namespace kx::dist {
namespace {

constexpr const char* kInstallHint =
    "install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev) and start the processes with mpirun, "
    "or set KEXUE_MPI_LIBRARY to the path of Open MPI's libmpi.so";

// The entry points and predefined handles of libmpi (collective/mpi_abi.h).
struct Mpi {
  mpi::InitializedFn initialized;
  mpi::FinalizedFn finalized;
  mpi::InitThreadFn init_thread;
  mpi::FinalizeFn finalize;
  mpi::CommRankFn comm_rank;
  mpi::CommSizeFn comm_size;
  mpi::CommSetErrhandlerFn comm_set_errhandler;
  mpi::AllreduceFn allreduce;
  mpi::BcastFn bcast;
  mpi::BarrierFn barrier;
  mpi::ErrorStringFn error_string;
  mpi::GetLibraryVersionFn library_version;
  mpi::Comm world;
  mpi::Datatype float32, int32, byte;
  mpi::Op sum;
  mpi::Errhandler errors_return;
};

template <class T>
T symbol(void* lib, const char* name, const std::string& path) {
  void* p = dlsym(lib, name);
  KX_CHECK(p, NoMpi, path, " has no symbol ", name, ": it is not Open MPI (kexue calls Open MPI's ABI; MPICH is not supported); ", kInstallHint);
  return reinterpret_cast<T>(p);
}

Mpi open_mpi() {
  const char* env = std::getenv("KEXUE_MPI_LIBRARY");
  std::vector<std::string> candidates = env && *env ? std::vector<std::string>{env} : std::vector<std::string>{"libmpi.so.40", "libmpi.so"};
  void* lib = nullptr;
  std::string path, reasons;
  for (const std::string& c : candidates) {
    // RTLD_GLOBAL: Open MPI's own plugins (mca_*.so) resolve libmpi's symbols globally
    lib = dlopen(c.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (lib) { path = c; break; }
    reasons += std::string(reasons.empty() ? "" : "; ") + dlerror();
  }
  KX_CHECK(lib, NoMpi, "MPI is not available (", reasons, "): ", kInstallHint);
  Mpi m{};
  m.initialized = symbol<mpi::InitializedFn>(lib, "MPI_Initialized", path);
  m.finalized = symbol<mpi::FinalizedFn>(lib, "MPI_Finalized", path);
  m.init_thread = symbol<mpi::InitThreadFn>(lib, "MPI_Init_thread", path);
  m.finalize = symbol<mpi::FinalizeFn>(lib, "MPI_Finalize", path);
  m.comm_rank = symbol<mpi::CommRankFn>(lib, "MPI_Comm_rank", path);
  m.comm_size = symbol<mpi::CommSizeFn>(lib, "MPI_Comm_size", path);
  m.comm_set_errhandler = symbol<mpi::CommSetErrhandlerFn>(lib, "MPI_Comm_set_errhandler", path);
  m.allreduce = symbol<mpi::AllreduceFn>(lib, "MPI_Allreduce", path);
  m.bcast = symbol<mpi::BcastFn>(lib, "MPI_Bcast", path);
  m.barrier = symbol<mpi::BarrierFn>(lib, "MPI_Barrier", path);
  m.error_string = symbol<mpi::ErrorStringFn>(lib, "MPI_Error_string", path);
  m.library_version = symbol<mpi::GetLibraryVersionFn>(lib, "MPI_Get_library_version", path);
  m.world = symbol<mpi::Comm>(lib, "ompi_mpi_comm_world", path);
  m.float32 = symbol<mpi::Datatype>(lib, "ompi_mpi_float", path);
  m.int32 = symbol<mpi::Datatype>(lib, "ompi_mpi_int", path);
  m.byte = symbol<mpi::Datatype>(lib, "ompi_mpi_byte", path);
  m.sum = symbol<mpi::Op>(lib, "ompi_mpi_op_sum", path);
  m.errors_return = symbol<mpi::Errhandler>(lib, "ompi_mpi_errors_return", path);
  return m;
}

// A collective and where it stands.
struct Job {
  std::function<void()> body;
  std::string what;  // "all-reduce of 3 tensors (1.2 MB)", for errors
  bool done = false;
  std::exception_ptr error;
  double busy_ms = 0;
};

class Communicator {
 public:
  // Starts the communication thread, which opens MPI and joins the job first of all (with_mpi), or
  // makes a world of this process alone.
  explicit Communicator(bool with_mpi) {
    const uint64_t ticket = submit("joining the MPI job", [this, with_mpi] {
      if (with_mpi) join();
      else world_.library = "none (a single process without MPI)";
    });
    thread_ = std::thread([this] { loop(); });
    try {
      wait(ticket, -1);
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
      }
      cv_.notify_all();
      thread_.join();
      throw;
    }
  }

  const World& world() const { return world_; }

  uint64_t submit(std::string what, std::function<void()> body) {
    std::lock_guard<std::mutex> lock(mu_);
    KX_CHECK(broken_.empty(), Dist, broken_);
    const uint64_t ticket = next_ticket_++;
    auto job = std::make_shared<Job>();
    job->body = std::move(body);
    job->what = std::move(what);
    jobs_[ticket] = job;
    queue_.push_back(ticket);
    cv_.notify_all();
    return ticket;
  }

  // timeout_ms < 0: no limit.
  Timing wait(uint64_t ticket, double timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = jobs_.find(ticket);
    KX_CHECK(it != jobs_.end(), Arg, "dist: no pending collective ", ticket, " (waited for already, or never started)");
    std::shared_ptr<Job> job = it->second;
    auto finished = [&] { return job->done; };
    if (timeout_ms < 0) cv_.wait(lock, finished);
    else if (!cv_.wait_for(lock, std::chrono::duration<double, std::milli>(timeout_ms), finished)) {
      std::ostringstream os;
      os << "dist: the " << job->what << " did not finish within " << timeout_ms / 1000
         << " s: another process of the job has died or stopped answering (see the launcher's messages); "
            "this process must exit, and the run can resume from its last checkpoint (KEXUE_DIST_TIMEOUT sets the limit in seconds)";
      broken_ = os.str();
      fail(Code::Dist, broken_);
    }
    jobs_.erase(ticket);
    if (job->error) {
      if (broken_.empty()) {
        try {
          std::rethrow_exception(job->error);
        } catch (const std::exception& e) {
          broken_ = std::string("dist: an earlier collective failed: ") + e.what();
        }
      }
      std::rethrow_exception(job->error);
    }
    return {job->busy_ms};
  }

  // Runs MPI_Finalize on the communication thread (which then idles), unless a collective failed;
  // every later call fails.
  void finalize() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!broken_.empty() || finalized_) return;
    }
    const uint64_t ticket = submit("MPI_Finalize", [this] {
      if (mpi_.finalize) check(mpi_.finalize(), "MPI_Finalize");
    });
    wait(ticket, -1);
    std::lock_guard<std::mutex> lock(mu_);
    finalized_ = true;
    broken_ = "dist: the communicator has been finalized";
  }

  // ---- on the communication thread --------------------------------------------------------------

  void check(int rc, const char* what) {
    if (rc == mpi::kSuccess) return;
    char text[mpi::kMaxErrorString + 1] = {};
    int length = 0;
    mpi_.error_string(rc, text, &length);
    fail(Code::Dist, "dist: ", what, " failed: ", text);
  }

  // MPI's reductions take an int count: buffers go in pieces of at most 2^30 elements. Without MPI
  // (a world of one) the sum is the buffer itself.
  void all_reduce_buffer(void* data, size_t count, DType dtype) {
    if (!mpi_.allreduce) return;
    const mpi::Datatype type = dtype == DType::Float32 ? mpi_.float32 : mpi_.int32;
    constexpr size_t kPiece = size_t(1) << 30;
    for (size_t at = 0; at < count; at += kPiece) {
      const int n = (int)std::min(kPiece, count - at);
      check(mpi_.allreduce(mpi::in_place(), static_cast<char*>(data) + at * 4, n, type, mpi_.sum, mpi_.world), "MPI_Allreduce");
    }
  }

  void broadcast_buffer(void* data, size_t bytes, int root) {
    if (!mpi_.bcast) return;
    constexpr size_t kPiece = size_t(1) << 30;
    for (size_t at = 0; at < bytes; at += kPiece)
      check(mpi_.bcast(static_cast<char*>(data) + at, (int)std::min(kPiece, bytes - at), mpi_.byte, root, mpi_.world), "MPI_Bcast");
  }

  // A bucket of one tensor is reduced in its own storage; several are packed into `scratch_`.
  template <class Reduce>
  void through_scratch(const std::vector<Tensor>& bucket, Reduce reduce) {
    if (bucket.size() == 1) return reduce(bucket[0].raw(), bucket[0].nbytes());
    size_t bytes = 0;
    for (const Tensor& t : bucket) bytes += t.nbytes();
    if (scratch_.size() < bytes) scratch_.resize(bytes);
    size_t at = 0;
    for (const Tensor& t : bucket) { std::memcpy(scratch_.data() + at, t.raw(), t.nbytes()); at += t.nbytes(); }
    reduce(scratch_.data(), bytes);
    at = 0;
    for (const Tensor& t : bucket) { std::memcpy(t.raw(), scratch_.data() + at, t.nbytes()); at += t.nbytes(); }
  }

  void ensure_nccl(int device) {
    if (nccl_device_ >= 0) {
      KX_CHECK(nccl_device_ == device, Device, "dist: this process's NCCL communicator is on cuda:", nccl_device_, ", not cuda:", device,
               " (one GPU per process)");
      return;
    }
    // rank 0 makes the unique id, MPI carries it to every rank, and all join the NCCL clique
    cuda::NcclId id{};
    if (world_.rank == 0) id = cuda::nccl_unique_id();
    broadcast_buffer(id.bytes, sizeof id.bytes, 0);
    cuda::nccl_init(id, world_.rank, world_.size, device);
    nccl_device_ = device;
  }

  World world_;
  Mpi mpi_{};
  std::vector<unsigned char> scratch_;
  int nccl_device_ = -1;

 private:
  void join() {
    mpi_ = open_mpi();
    int already = 0;
    check(mpi_.initialized(&already), "MPI_Initialized");
    KX_CHECK(!already, Dist, "dist: MPI was initialized by someone else in this process");
    int provided = 0;
    check(mpi_.init_thread(nullptr, nullptr, mpi::kThreadSerialized, &provided), "MPI_Init_thread");
    // every MPI call is made on this thread, one at a time: SERIALIZED (or better) is all it needs
    KX_CHECK(provided >= mpi::kThreadSerialized, Dist, "dist: this MPI library offers thread level ", provided, ", kexue needs MPI_THREAD_SERIALIZED (2)");
    // failures come back as error codes (E_DIST) instead of aborting the job from inside MPI
    check(mpi_.comm_set_errhandler(mpi_.world, mpi_.errors_return), "MPI_Comm_set_errhandler");
    check(mpi_.comm_rank(mpi_.world, &world_.rank), "MPI_Comm_rank");
    check(mpi_.comm_size(mpi_.world, &world_.size), "MPI_Comm_size");
    char version[8192] = {};
    int length = 0;
    check(mpi_.library_version(version, &length), "MPI_Get_library_version");
    world_.library = std::string(version, strnlen(version, sizeof version));
    const size_t line_end = world_.library.find_first_of("\n,");
    if (line_end != std::string::npos) world_.library.resize(line_end);
  }

  void loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        job = jobs_.at(queue_.front());
        queue_.pop_front();
      }
      const auto t0 = std::chrono::steady_clock::now();
      std::exception_ptr error;
      try {
        job->body();
      } catch (...) {
        error = std::current_exception();
      }
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::lock_guard<std::mutex> lock(mu_);
      job->error = error;
      job->busy_ms = ms;
      job->done = true;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<uint64_t> queue_;
  std::map<uint64_t, std::shared_ptr<Job>> jobs_;
  uint64_t next_ticket_ = 1;
  std::string broken_;  // why every later call fails, once one has
  bool finalized_ = false;
  bool stopping_ = false;  // the job could not be joined: the thread ends
  std::thread thread_;
};

std::mutex g_init_mu;
Communicator* g_comm = nullptr;  // never destroyed: its thread may be blocked in MPI at exit

Communicator& comm() {
  std::lock_guard<std::mutex> lock(g_init_mu);
  KX_CHECK(g_comm, Dist, "dist: not initialized: call kx.dist.init() first");
  return *g_comm;
}

// Consecutive tensors up to bucket_bytes together (a larger tensor alone), of one dtype where a
// reduction needs it (a broadcast moves bytes).
std::vector<std::vector<Tensor>> buckets_of(const std::vector<Tensor>& tensors, size_t bucket_bytes, bool one_dtype) {
  std::vector<std::vector<Tensor>> out;
  size_t bytes = 0;
  for (const Tensor& t : tensors) {
    if (out.empty() || (one_dtype && out.back()[0].dtype != t.dtype) || bytes + t.nbytes() > bucket_bytes) {
      out.emplace_back();
      bytes = 0;
    }
    out.back().push_back(t);
    bytes += t.nbytes();
  }
  return out;
}

// One device for all; returns it.
Device device_of(const std::vector<Tensor>& tensors, const char* what) {
  KX_CHECK(!tensors.empty(), Arg, what, ": no tensors");
  const Device d = tensors[0].device();
  for (const Tensor& t : tensors)
    KX_CHECK(t.device().type == d.type && t.device().index == d.index, Device, what, ": the tensors are on different devices");
  return d;
}

std::string describe(const char* what, const std::vector<Tensor>& tensors) {
  size_t bytes = 0;
  for (const Tensor& t : tensors) bytes += t.nbytes();
  std::ostringstream os;
  os << what << " of " << tensors.size() << " tensor" << (tensors.size() == 1 ? "" : "s") << " (" << bytes << " bytes)";
  return os.str();
}

}  // namespace

World init(bool with_mpi) {
  std::lock_guard<std::mutex> lock(g_init_mu);
  if (!g_comm) g_comm = new Communicator(with_mpi);
  return g_comm->world();
}

bool initialized() {
  std::lock_guard<std::mutex> lock(g_init_mu);
  return g_comm != nullptr;
}

uint64_t start_all_reduce(std::vector<Tensor> tensors, ReduceOp op, size_t bucket_bytes) {
  const Device device = device_of(tensors, "allReduce");
  for (const Tensor& t : tensors) {
    const bool cuda_half = device.type == DeviceType::CUDA && (t.dtype == DType::Float16 || t.dtype == DType::BFloat16);
    KX_CHECK(t.dtype == DType::Float32 || cuda_half || (t.dtype == DType::Int32 && op == ReduceOp::Sum), DType,
             "allReduce: ", dtype_name(t.dtype), " is not reduced", op == ReduceOp::Mean ? " by mean" : "",
             " (float32 and int32 sums", device.type == DeviceType::CUDA ? "; float16 and bfloat16 on CUDA" : "", ")");
  }
  Communicator& c = comm();
  std::string what = describe("all-reduce", tensors);  // before the lambda takes the tensors
  return c.submit(std::move(what), [&c, tensors = std::move(tensors), op, bucket_bytes, device] {
    if (device.type == DeviceType::CUDA) {
      c.ensure_nccl(device.index);
      for (const auto& bucket : buckets_of(tensors, bucket_bytes, true)) {
        std::vector<cuda::NcclBuffer> buffers;
        for (const Tensor& t : bucket) buffers.push_back({t.raw(), (size_t)t.numel(), t.dtype});
        cuda::nccl_all_reduce(buffers, op == ReduceOp::Mean, device.index);
      }
      return;
    }
    const float inverse = 1.0f / (float)c.world_.size;
    for (const auto& bucket : buckets_of(tensors, bucket_bytes, true)) {
      const DType dtype = bucket[0].dtype;
      c.through_scratch(bucket, [&](void* data, size_t bytes) {
        c.all_reduce_buffer(data, bytes / 4, dtype);
        if (op == ReduceOp::Mean) {
          float* x = static_cast<float*>(data);
          for (size_t i = 0; i < bytes / 4; ++i) x[i] *= inverse;
        }
      });
    }
  });
}

uint64_t start_broadcast(std::vector<Tensor> tensors, int root, size_t bucket_bytes) {
  const Device device = device_of(tensors, "broadcast");
  Communicator& c = comm();
  KX_CHECK(root >= 0 && root < c.world().size, Arg, "broadcast: root ", root, " is not a rank of this job (0..", c.world().size - 1, ")");
  std::string what = describe("broadcast", tensors);  // before the lambda takes the tensors
  return c.submit(std::move(what), [&c, tensors = std::move(tensors), root, bucket_bytes, device] {
    if (device.type == DeviceType::CUDA) {
      c.ensure_nccl(device.index);
      for (const auto& bucket : buckets_of(tensors, bucket_bytes, false)) {
        std::vector<cuda::NcclBuffer> buffers;
        for (const Tensor& t : bucket) buffers.push_back({t.raw(), (size_t)t.numel(), t.dtype});
        cuda::nccl_broadcast(buffers, root, device.index);
      }
      return;
    }
    for (const auto& bucket : buckets_of(tensors, bucket_bytes, false)) c.through_scratch(bucket, [&](void* data, size_t n) { c.broadcast_buffer(data, n, root); });
  });
}

uint64_t start_barrier() {
  Communicator& c = comm();
  return c.submit("barrier", [&c] {
    if (c.mpi_.barrier) c.check(c.mpi_.barrier(c.mpi_.world), "MPI_Barrier");
  });
}

Timing wait(uint64_t ticket, double timeout_ms) { return comm().wait(ticket, timeout_ms); }

void finalize() {
  if (initialized()) comm().finalize();
}

}  // namespace kx::dist
