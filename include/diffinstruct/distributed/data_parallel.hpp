#pragma once
/// \file Data-parallel training over c10d, the engine PyTorch's DDP uses (never a home-made transport).
///
/// `DataParallel::from_env()` joins a process group: ranks rendezvous through a TCP store at
/// MASTER_ADDR:MASTER_PORT (rank 0 hosts it) or, with `DataParallelOptions::file_store`, through a
/// shared file; RANK and WORLD_SIZE say who is who (LOCAL_RANK is read for launchers that set it).
/// Any launcher that sets these works; scripts/launch_local.sh is one for a single machine. The
/// group is Gloo for CPU tensors (GLOO_SOCKET_IFNAME picks the network interface, as in PyTorch) or,
/// with `backend(DistributedBackend::kNccl)` in a CUDA-enabled LibTorch, NCCL for CUDA tensors (one
/// GPU per process: LOCAL_RANK selects it).
///
/// It implements `Collectives` for `DiStarTrainer::set_data_parallel`:
///   * average: gradients are packed into flat buckets (per dtype, `bucket_bytes` each), all-reduced
///     with all buckets in flight at once, divided by the world size and unpacked;
///   * broadcast: rank 0's parameters to everyone (at start and after a resume);
///   * barrier;
///   * publish_status / await_status through the store: how rank 0's checkpoint write went reaches
///     the other ranks as soon as it is known, however long the write takes.
/// Every collective waits at most `timeout`; a dead or hung rank becomes a c10::Error on the others
/// that says so, instead of a hang. Needs Debian's libgloo-dev (the headers c10d's Gloo group includes).
///
/// Example (every rank runs the same program):
///   auto dp = diffinstruct::DataParallel::from_env();
///   trainer.set_data_parallel(dp);            // per-rank batch; same trajectory as one big batch
///   if (dp->rank() == 0) { /* log, write samples */ }

#include <diffinstruct/distributed/c10d_compat.hpp>
#include <diffinstruct/trainer/collectives.hpp>

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

namespace diffinstruct {

/// Which c10d process group carries the collectives.
enum class DistributedBackend {
  kGloo,  ///< CPU tensors (any LibTorch with c10d)
  kNccl,  ///< CUDA tensors, one GPU per process (a CUDA-enabled LibTorch built with NCCL)
};

struct DataParallelOptions {
  TORCH_ARG(DistributedBackend, backend) = DistributedBackend::kGloo;
  /// How long a collective (and the rendezvous) may wait for the other ranks.
  TORCH_ARG(std::chrono::milliseconds, timeout) = std::chrono::milliseconds(60000);
  /// Rendezvous through this file (shared by all ranks) instead of the TCP store; empty: TCP.
  TORCH_ARG(std::string, file_store) = "";
  /// Gradient bucket size: fewer, larger all-reduces amortise per-message latency.
  TORCH_ARG(int64_t, bucket_bytes) = int64_t{25} << 20;
  /// How long the other ranks wait for rank 0 to write a checkpoint (DiStarTrainer::save). Not the
  /// collective timeout: a multi-GB write may take minutes. If rank 0 dies meanwhile the wait fails at
  /// once with the TCP store (its server lives in rank 0); with a file store it ends at this timeout.
  TORCH_ARG(std::chrono::milliseconds, checkpoint_timeout) = std::chrono::milliseconds(6 * 3600 * 1000);
};

/// Who this process is, from the launcher's environment.
struct RankEnvironment {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;

  static RankEnvironment from_env() {
    auto read_int = [](const char* name, int fallback, bool required) {
      const char* v = std::getenv(name);
      TORCH_CHECK(v || !required, "diffinstruct::DataParallel: environment variable ", name,
                  " is not set (a launcher such as scripts/launch_local.sh sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)");
      if (!v) return fallback;
      char* end = nullptr;
      const long x = std::strtol(v, &end, 10);
      TORCH_CHECK(end && *end == '\0' && end != v, "diffinstruct::DataParallel: ", name, " must be an integer, got '", v, "'");
      return static_cast<int>(x);
    };
    RankEnvironment e;
    e.world_size = read_int("WORLD_SIZE", 1, false);
    e.rank = read_int("RANK", 0, e.world_size > 1);
    e.local_rank = read_int("LOCAL_RANK", e.rank, false);
    e.master_port = read_int("MASTER_PORT", 29500, false);
    if (const char* a = std::getenv("MASTER_ADDR")) e.master_addr = a;
    TORCH_CHECK(e.world_size >= 1, "diffinstruct::DataParallel: WORLD_SIZE must be >= 1, got ", e.world_size);
    TORCH_CHECK(e.rank >= 0 && e.rank < e.world_size, "diffinstruct::DataParallel: RANK must be in [0, WORLD_SIZE = ", e.world_size,
                "), got ", e.rank);
    TORCH_CHECK(e.master_port > 0 && e.master_port < 65536, "diffinstruct::DataParallel: MASTER_PORT must be in 1..65535, got ",
                e.master_port);
    return e;
  }
};

class DataParallel : public Collectives {
 public:
  /// Joins the group described by the environment (see RankEnvironment).
  static std::shared_ptr<DataParallel> from_env(DataParallelOptions options = {}) {
    return std::make_shared<DataParallel>(RankEnvironment::from_env(), std::move(options));
  }

  DataParallel(RankEnvironment env, DataParallelOptions options) : env_(std::move(env)), options_(std::move(options)) {
    TORCH_CHECK(options_.timeout().count() > 0, "diffinstruct::DataParallel: expected a positive timeout, got ", options_.timeout().count(),
                " ms");
    TORCH_CHECK(options_.bucket_bytes() > 0, "diffinstruct::DataParallel: expected bucket_bytes > 0, got ", options_.bucket_bytes());
    TORCH_CHECK(options_.checkpoint_timeout().count() > 0, "diffinstruct::DataParallel: expected a positive checkpoint_timeout, got ",
                options_.checkpoint_timeout().count(), " ms");
    c10::intrusive_ptr<c10d::Store> store;
    try {
      if (!options_.file_store().empty()) {
        store = c10::make_intrusive<c10d::FileStore>(options_.file_store(), env_.world_size);
      } else {
        c10d::TCPStoreOptions o;
        o.port = static_cast<std::uint16_t>(env_.master_port);
        o.isServer = env_.rank == 0;
        o.numWorkers = static_cast<std::size_t>(env_.world_size);
        o.waitWorkers = true;
        o.timeout = options_.timeout();
        store = c10::make_intrusive<c10d::TCPStore>(env_.master_addr, o);
      }
      store->setTimeout(options_.timeout());
      const auto prefixed = c10::make_intrusive<c10d::PrefixStore>("diffinstruct", store);
      status_store_ = c10::make_intrusive<c10d::PrefixStore>("diffinstruct_status", store);
      if (options_.backend() == DistributedBackend::kNccl) {
#ifdef USE_C10D_NCCL
        c10::cuda::set_device(static_cast<c10::DeviceIndex>(env_.local_rank));
        auto nccl = c10d::ProcessGroupNCCL::Options::create();
        nccl->timeout = options_.timeout();
        group_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, env_.rank, env_.world_size, nccl);
#else
        TORCH_CHECK(false, "diffinstruct::DataParallel: the NCCL backend needs a CUDA-enabled LibTorch built with NCCL; this one (",
                    TORCH_VERSION, ") has none; use DistributedBackend::kGloo");
#endif
      } else {
        auto gloo = c10d::ProcessGroupGloo::Options::create(options_.timeout());
        const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
        gloo->devices.push_back(ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                                  : c10d::ProcessGroupGloo::createDefaultDevice());
        group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, env_.rank, env_.world_size, gloo);
      }
    } catch (const c10::Error& e) {
      TORCH_CHECK(false, "diffinstruct::DataParallel: rank ", env_.rank, " of ", env_.world_size, " could not join the group (",
                  options_.file_store().empty() ? "TCP store at " + env_.master_addr + ":" + std::to_string(env_.master_port)
                                                : "file store " + options_.file_store(),
                  ", timeout ", options_.timeout().count(), " ms): ", e.what_without_backtrace());
    }
  }

  int rank() const override { return env_.rank; }
  int world_size() const override { return env_.world_size; }
  int local_rank() const { return env_.local_rank; }
  bool is_main() const { return env_.rank == 0; }
  const DataParallelOptions& options() const { return options_; }
  /// Seconds spent inside collectives so far (for benchmarks: the communication share of a step).
  double collective_seconds() const { return collective_seconds_; }

  void average(std::vector<torch::Tensor>& tensors) override {
    if (env_.world_size == 1 || tensors.empty()) return;
    const auto t0 = std::chrono::steady_clock::now();
    torch::NoGradGuard no_grad;
    // Buckets of same-dtype tensors up to bucket_bytes each, all in flight before the first wait.
    std::map<c10::ScalarType, std::vector<std::vector<size_t>>> buckets;
    std::map<c10::ScalarType, int64_t> filled;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto st = tensors[i].scalar_type();
      const int64_t bytes = tensors[i].numel() * static_cast<int64_t>(tensors[i].element_size());
      auto& list = buckets[st];
      if (list.empty() || filled[st] + bytes > options_.bucket_bytes()) {
        list.emplace_back();
        filled[st] = 0;
      }
      list.back().push_back(i);
      filled[st] += bytes;
    }
    struct InFlight {
      std::vector<size_t> members;
      std::vector<torch::Tensor> flat;
      c10::intrusive_ptr<c10d::Work> work;
    };
    std::vector<InFlight> flights;
    for (auto& [st, list] : buckets) {
      for (auto& members : list) {
        std::vector<torch::Tensor> parts;
        for (size_t i : members) parts.push_back(tensors[i].detach().reshape({-1}));
        InFlight f{members, {torch::cat(parts)}, {}};
        f.work = group_->allreduce(f.flat);
        flights.push_back(std::move(f));
      }
    }
    for (auto& f : flights) {
      wait(f.work, "gradient all-reduce");
      f.flat[0].div_(env_.world_size);
      int64_t offset = 0;
      for (size_t i : f.members) {
        const int64_t n = tensors[i].numel();
        tensors[i] = f.flat[0].slice(0, offset, offset + n).view(tensors[i].sizes());
        offset += n;
      }
    }
    collective_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  void broadcast(std::vector<torch::Tensor>& tensors, int root) override {
    if (env_.world_size == 1 || tensors.empty()) return;
    const auto t0 = std::chrono::steady_clock::now();
    torch::NoGradGuard no_grad;
    c10d::BroadcastOptions o;
    o.rootRank = root;
    for (auto& t : tensors) {
      TORCH_CHECK(t.is_contiguous(), "diffinstruct::DataParallel::broadcast: expected contiguous tensors");
      std::vector<torch::Tensor> one{t};
      auto work = group_->broadcast(one, o);
      wait(work, "parameter broadcast");
    }
    collective_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  void barrier() override {
    if (env_.world_size == 1) return;
    auto work = group_->barrier();
    wait(work, "barrier");
  }

  void publish_status(const std::string& key, const std::string& status) override {
    if (env_.world_size == 1) return;
    try {
      status_store_->set(key, std::vector<uint8_t>(status.begin(), status.end()));
    } catch (const std::exception& e) {
      TORCH_CHECK(false, "diffinstruct::DataParallel: rank ", env_.rank, " could not publish '", key, "' to the other ranks: ", e.what());
    }
  }

  std::string await_status(const std::string& key) override {
    if (env_.world_size == 1) return "ok";
    try {
      status_store_->wait({key}, options_.checkpoint_timeout());
      const auto bytes = status_store_->get(key);
      return std::string(bytes.begin(), bytes.end());
    } catch (const std::exception& e) {
      TORCH_CHECK(false, "diffinstruct::DataParallel: rank ", env_.rank, " of ", env_.world_size, " got no report from rank 0 for '", key,
                  "' (rank 0 died, or took longer than checkpoint_timeout = ", options_.checkpoint_timeout().count(), " ms): ", e.what());
    }
  }

 private:
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    std::string reason;
    try {
      work->wait(options_.timeout());
      return;
    } catch (const c10::Error& e) {
      reason = e.what_without_backtrace();
    } catch (const std::exception& e) {
      reason = e.what();
    }
    TORCH_CHECK(false, "diffinstruct::DataParallel: ", what, " failed on rank ", env_.rank, " of ", env_.world_size,
                ": another rank died, hung, or did not answer within ", options_.timeout().count(), " ms (", reason, ")");
  }

  RankEnvironment env_;
  DataParallelOptions options_;
  c10::intrusive_ptr<compat::C10dBackend> group_;  // Gloo or NCCL
  c10::intrusive_ptr<c10d::Store> status_store_;    // checkpoint outcomes from rank 0
  double collective_seconds_ = 0;
};

}  // namespace diffinstruct
