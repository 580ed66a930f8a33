// Fused WARP-LUT forward/backward for the CPU: a plain C++ shared library (no PyTorch headers, so it
// compiles in seconds), called through ctypes from warpc/nn/kernels/_cpu.py, which allocates the tensors, checks
// shapes and passes raw pointers. Autograd lives in Python (_cpu_fn.py).
//
// Layout: activations are node-major ("transposed", nodes x batch, contiguous) so that the gather of a node's
// k inputs reads k contiguous rows and every inner loop runs over the batch and vectorises. Nodes are split
// across threads in chunks; each node's reductions run in one thread, so results do not depend on the thread
// count. Transcendentals are small polynomial versions written in plain float arithmetic so that the compiler
// vectorises them with any instruction set (no -ffast-math needed).
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>


#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace {

// Batch elements per inner block: chi[2^k][blk<k>] stays in L1 (32 KiB at k = 6 with 64; 8 KiB at k = 4 with 128).
template <int K>
constexpr int blk() { return K <= 4 ? 128 : 64; }

inline float as_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t as_uint(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

// exp(x), |rel err| ~ 2e-7 on [-87, 88]; round-to-nearest via the 1.5*2^23 trick (no floor call).
inline float fexp(float x) {
  x = std::min(88.0f, std::max(-87.0f, x));
  const float t = x * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t e = static_cast<int32_t>(n) + 127;
  return p * as_float(static_cast<uint32_t>(e) << 23);
}

// log(x) for normal positive x (cephes logf polynomial), |rel err| ~ 1e-7.
inline float flog(float x) {
  const uint32_t u = as_uint(x);
  int32_t e = static_cast<int32_t>(u >> 23) - 127;
  float m = as_float((u & 0x007fffffu) | 0x3f800000u);  // [1, 2)
  const bool big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1 : e;
  const float f = m - 1.0f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  const float f2 = f * f;
  float y = f * f2 * p;
  const float ef = static_cast<float>(e);
  y += ef * -2.12194440e-4f;
  y += -0.5f * f2;
  return f + y + ef * 0.693359375f;
}

// Counter-based hash (two rounds of "lowbias32", keyed): uniform 32 bits per (seed, counter).
inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
  return x;
}
inline float uniform_from_counter(uint32_t c, uint32_t k0, uint32_t k1) {
  const uint32_t h = mix32(mix32(c * 0x9E3779B9u + k0) ^ k1);
  const float u = (static_cast<float>(h >> 8) + 0.5f) * (1.0f / 16777216.0f);
  return std::min(1.0f - 1e-6f, std::max(1e-6f, u));  // same clamp as warpc.nn.warplut.logistic_noise
}
inline float logistic_from_counter(uint32_t c, uint32_t k0, uint32_t k1) {
  const float u = uniform_from_counter(c, k0, k1);
  return flog(u / (1.0f - u));  // log u - log(1 - u) with one log
}

struct Noise {
  int mode;          // 0 none, 1 hash(seed), 2 explicit tensor
  uint32_t k0, k1;
  const float* ext;  // (out, B) when mode == 2
  // mode 1: this call computes rows [row0, row0 + B) of a batch of `stride` rows; node j's sample b draws counter
  // j * stride + row0 + b, so a batch split over processes gets the very noise one process would draw.
  int64_t row0, stride;
};

// Walsh terms of node j for batch columns [b0, b0 + n): s_i = 1 - 2 x_i, chi_m = prod_{i in m} s_i (doubling order).
template <int K>
inline __attribute__((always_inline)) void walsh_block(const float* xT, const int32_t* idx, int64_t j, int64_t B,
                                                       int64_t b0, int n, float (*s)[blk<K>()],
                                                       float (*chi)[blk<K>()]) {
  for (int i = 0; i < K; ++i) {
    const float* xr = xT + static_cast<int64_t>(idx[j * K + i]) * B + b0;
    for (int b = 0; b < n; ++b) s[i][b] = 1.0f - 2.0f * xr[b];
  }
  for (int b = 0; b < n; ++b) chi[0][b] = 1.0f;
  for (int i = 0; i < K; ++i)
    for (int m = 0; m < (1 << i); ++m)
      for (int b = 0; b < n; ++b) chi[(1 << i) + m][b] = chi[m][b] * s[i][b];
}

template <int K>
inline __attribute__((always_inline)) void forward_nodes(int64_t j0, int64_t j1, int64_t B, const float* xT, const int32_t* idx, const float* theta,
                   float inv_tau, Noise nz, bool st, bool lin, float* yT, float* ysT) {
  constexpr int M = 1 << K, BLK = blk<K>();
  alignas(64) float chi[M][BLK];
  alignas(64) float s[K][BLK];
  alignas(64) float a[BLK];
  for (int64_t j = j0; j < j1; ++j) {
    const float* th = theta + j * M;
    for (int64_t b0 = 0; b0 < B; b0 += BLK) {
      const int n = static_cast<int>(std::min<int64_t>(BLK, B - b0));
      walsh_block<K>(xT, idx, j, B, b0, n, s, chi);
      for (int b = 0; b < n; ++b) a[b] = th[0];
      for (int m = 1; m < M; ++m) {
        const float t = th[m];
        for (int b = 0; b < n; ++b) a[b] += t * chi[m][b];
      }
      float* yr = yT + j * B + b0;
      if (lin) {  // linear output y = z (DLGN: the node is a multilinear polynomial of its inputs, no sigmoid)
        for (int b = 0; b < n; ++b) yr[b] = a[b];
        continue;
      }
      if (nz.mode == 1 && inv_tau == 1.0f) {
        // tau = 1 (the k = 2 default): sigmoid(-(z + log(u/(1-u)))) = (1-u) / ((1-u) + u e^z), no log needed.
        const uint32_t c0 = static_cast<uint32_t>(j * nz.stride + nz.row0 + b0);
        if (st) {
          float* sr = ysT + j * B + b0;
          for (int b = 0; b < n; ++b) {
            const float u = uniform_from_counter(c0 + static_cast<uint32_t>(b), nz.k0, nz.k1);
            const float v = 1.0f - u, w = u * fexp(a[b]);
            sr[b] = v / (v + w);
            yr[b] = w < v ? 1.0f : 0.0f;
          }
        } else {
          for (int b = 0; b < n; ++b) {
            const float u = uniform_from_counter(c0 + static_cast<uint32_t>(b), nz.k0, nz.k1);
            const float v = 1.0f - u;
            yr[b] = v / (v + u * fexp(a[b]));
          }
        }
        continue;
      }
      if (nz.mode == 1) {
        const uint32_t c0 = static_cast<uint32_t>(j * nz.stride + nz.row0 + b0);
        for (int b = 0; b < n; ++b) a[b] += logistic_from_counter(c0 + static_cast<uint32_t>(b), nz.k0, nz.k1);
      } else if (nz.mode == 2) {
        const float* nr = nz.ext + j * B + b0;
        for (int b = 0; b < n; ++b) a[b] += nr[b];
      }
      if (st) {
        float* sr = ysT + j * B + b0;
        for (int b = 0; b < n; ++b) {
          sr[b] = 1.0f / (1.0f + fexp(a[b] * inv_tau));
          yr[b] = a[b] < 0.0f ? 1.0f : 0.0f;
        }
      } else {
        for (int b = 0; b < n; ++b) yr[b] = 1.0f / (1.0f + fexp(a[b] * inv_tau));
      }
    }
  }
}

template <int K>
inline __attribute__((always_inline)) void backward_nodes(int64_t j0, int64_t j1, int64_t B, const float* gT, const float* xT, const int32_t* idx,
                    const float* theta, const float* ysT, float inv_tau, bool lin, float* gtheta, float* buf, float* gx,
                    const int64_t* rev_ptr, const int32_t* rev_slot) {
  constexpr int M = 1 << K, BLK = blk<K>();
  alignas(64) float chi[M][BLK];
  alignas(64) float s[K][BLK];
  alignas(64) float gz[BLK];
  for (int64_t j = j0; j < j1; ++j) {
    const float* th = theta + j * M;
    float acc[M];
    for (int m = 0; m < M; ++m) acc[m] = 0.0f;
    for (int64_t b0 = 0; b0 < B; b0 += BLK) {
      const int n = static_cast<int>(std::min<int64_t>(BLK, B - b0));
      walsh_block<K>(xT, idx, j, B, b0, n, s, chi);
      const float* gr = gT + j * B + b0;
      const float* yr = ysT + j * B + b0;
      if (lin) {  // y = z
        for (int b = 0; b < n; ++b) gz[b] = gr[b];
      } else {  // y = sigmoid(-a / tau): dy/dz = -y (1 - y) / tau
        for (int b = 0; b < n; ++b) gz[b] = -gr[b] * yr[b] * (1.0f - yr[b]) * inv_tau;
      }
      for (int m = 0; m < M; ++m) {
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int b = 0; b < n; ++b) sum += gz[b] * chi[m][b];
        acc[m] += sum;
      }
      if (buf != nullptr || gx != nullptr) {
        // dz/dx_i = -2 dz/ds_i, dz/ds_i = sum_{m with bit i} theta_m chi_{m without i}
        for (int i = 0; i < K; ++i) {
          alignas(64) float d[BLK];
          for (int b = 0; b < n; ++b) d[b] = 0.0f;
          for (int m = 0; m < M; ++m) {
            if (!((m >> i) & 1)) continue;
            const float t = th[m];
            const int mo = m ^ (1 << i);
            for (int b = 0; b < n; ++b) d[b] += t * chi[mo][b];
          }
          // The slot's contribution, rounded to float in its own loop: the one-thread and the multi-thread paths
          // then add the very same values in the same order (no FMA contraction of this product into the sum in
          // one path only), so the input gradient is bit-identical whatever the thread count.
          for (int b = 0; b < n; ++b) d[b] = -2.0f * gz[b] * d[b];
          if (gx != nullptr) {  // one thread: accumulate straight into the input gradient (same order as CSR)
            const int64_t p = idx[j * K + i];
            float* gr = gx + p * B + b0;
            if (rev_slot[rev_ptr[p]] != static_cast<int32_t>(j * K + i)) {
              for (int b = 0; b < n; ++b) gr[b] += d[b];
            } else {  // input p's first consumer (lowest slot) stores: no zero-fill pass
              for (int b = 0; b < n; ++b) gr[b] = d[b];
            }
          } else {
            float* br = buf + (j * K + i) * B + b0;
            for (int b = 0; b < n; ++b) br[b] = d[b];
          }
        }
      }
    }
    for (int m = 0; m < M; ++m) gtheta[j * M + m] = acc[m];
  }
}

// Per-k entry points. The library is built with -march=native (the cache is keyed by the CPU), so every loop
// uses the widest vectors the CPU has; target_clones on top of -march=native measured 2x slower here.
#define WARPC_CLONES
#define WARPC_CLONES_FWD
#define WARPC_ENTRY(K)                                                                                          \
  WARPC_CLONES_FWD void forward_k##K(int64_t j0, int64_t j1, int64_t B, const float* x, const int32_t* ix,          \
                                 const float* th, float it, Noise nz, bool st, bool lin, float* y, float* ys) { \
    forward_nodes<K>(j0, j1, B, x, ix, th, it, nz, st, lin, y, ys);                                             \
  }                                                                                                             \
  WARPC_CLONES void backward_k##K(int64_t j0, int64_t j1, int64_t B, const float* g, const float* x,            \
                                  const int32_t* ix, const float* th, const float* ys, float it, bool lin,      \
                                  float* gth, float* bf, float* gx, const int64_t* rp, const int32_t* rs) {     \
    backward_nodes<K>(j0, j1, B, g, x, ix, th, ys, it, lin, gth, bf, gx, rp, rs);                               \
  }
WARPC_ENTRY(2)
WARPC_ENTRY(3)
WARPC_ENTRY(4)
WARPC_ENTRY(5)
WARPC_ENTRY(6)

WARPC_CLONES void gather_rows(int64_t p0, int64_t p1, int64_t B, const int64_t* rp, const int32_t* rs,
                              const float* bf, float* gx) {
  for (int64_t p = p0; p < p1; ++p) {
    float* dst = gx + p * B;
    if (rp[p] == rp[p + 1]) {  // no consumer
      for (int64_t b = 0; b < B; ++b) dst[b] = 0.0f;
      continue;
    }
    // the first consumer's row is copied, the others added: the one-thread path's exact arithmetic
    const float* first = bf + static_cast<int64_t>(rs[rp[p]]) * B;
    for (int64_t b = 0; b < B; ++b) dst[b] = first[b];
    for (int64_t t = rp[p] + 1; t < rp[p + 1]; ++t) {
      const float* src = bf + static_cast<int64_t>(rs[t]) * B;
      for (int64_t b = 0; b < B; ++b) dst[b] += src[b];
    }
  }
}


// Chunks per thread for the dynamic schedule: on a shared machine one thread may be descheduled for a while, and
// the other takes over its remaining chunks instead of idling at the end.
constexpr int64_t kChunksPerThread = 4;

// The kernels' own thread pool (not OpenMP): its workers spin ~kSpinMicros after a job, so the next kernel of the
// same training step (tens of microseconds later) starts without a wake-up, and then sleep on a condition
// variable, so they never hold a core between steps. This is independent of torch's OpenMP waiting policy
// (libgomp's, fixed when torch loads): torch's threads can wait passively while the kernels still get both cores.
constexpr int64_t kSpinMicros = 200;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

class Pool {
 public:
  // Run job(c) for c in [0, chunks) on the caller and nthreads - 1 workers; returns when all chunks are done.
  void run(int nthreads, int64_t chunks, const std::function<void(int64_t)>& job) {
    std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
    if (!busy.owns_lock() || nthreads <= 1) {  // a concurrent caller (another Python thread) runs alone
      for (int64_t c = 0; c < chunks; ++c) job(c);
      return;
    }
    const int helpers = std::min<int64_t>(nthreads, chunks) - 1;
    while (static_cast<int>(workers_) < helpers) {  // a new worker waits for the generation after this one
      std::thread(&Pool::work, this, static_cast<int>(workers_), generation_.load(std::memory_order_acquire)).detach();
      ++workers_;
    }
    job_ = &job;
    chunks_ = chunks;
    next_.store(0, std::memory_order_relaxed);
    active_ = helpers;
    pending_.store(helpers, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(sleep_mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    drain();
    for (int64_t spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < 4096) cpu_relax(); else std::this_thread::yield();
    }
  }

 private:
  void drain() {
    for (int64_t c; (c = next_.fetch_add(1, std::memory_order_relaxed)) < chunks_;) (*job_)(c);
  }

  void work(int id, uint64_t seen) {
    for (;;) {
      const auto t0 = std::chrono::steady_clock::now();
      int64_t spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen) {
        cpu_relax();
        if ((++spins & 255) == 0 &&
            std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(kSpinMicros)) {
          std::unique_lock<std::mutex> lk(sleep_mutex_);
          wake_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        }
      }
      seen = generation_.load(std::memory_order_acquire);
      if (id < active_) {
        drain();
        pending_.fetch_sub(1, std::memory_order_release);
      }
    }
  }

  std::mutex run_mutex_, sleep_mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t chunks_ = 0;
  int active_ = 0;
  size_t workers_ = 0;
};

// One pool per process, rebuilt in a forked child (its workers do not exist there; the old object is leaked on
// purpose: its detached threads are gone and its destructor must not run).
Pool* g_pool = nullptr;
std::once_flag g_pool_once;

Pool& pool() {
  std::call_once(g_pool_once, [] {
    g_pool = new Pool();
    pthread_atfork(nullptr, nullptr, [] { g_pool = new Pool(); });
  });
  return *g_pool;
}

// 1: run parallel loops on OpenMP instead of the pool. Set (warpc_set_openmp) when torch's libgomp was started with
// its long default spin (torch imported before warpc): its workers then spin after every torch op, and a pool
// thread beside them competes for the cores; sharing their team is faster there. The libgomp is torch's (same
// soname), so this adds no threads.
int g_use_openmp = 0;

// Run f(i0, i1) over [0, n) on up to nthreads threads, in chunks of at least `grain` items.
template <class F>
void par_for(int64_t n, int64_t grain, int nthreads, const F& f) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, std::max(1, nthreads) * kChunksPerThread);
  if (nthreads <= 1 || chunks <= 1) {
    f(0, n);
    return;
  }
  const int64_t step = (n + chunks - 1) / chunks;
  chunks = (n + step - 1) / step;
  if (g_use_openmp) {
    const int nt = static_cast<int>(std::min<int64_t>(nthreads, chunks));
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t c = 0; c < chunks; ++c) f(c * step, std::min(n, (c + 1) * step));
    return;
  }
  const std::function<void(int64_t)> job = [&](int64_t c) { f(c * step, std::min(n, (c + 1) * step)); };
  pool().run(nthreads, chunks, job);
}

int64_t grain_for(int64_t B, int k) {
  // ~32k element-terms per chunk: enough work to amortise scheduling, enough chunks to balance.
  const int64_t per_node = std::max<int64_t>(1, B * (int64_t(1) << k));
  return std::max<int64_t>(1, 32768 / per_node);
}

// ---- learnable wiring ---------------------------------------------------------------------------------------
// A learnable slot s (= node * k + input) reads the softmax mixture of C candidate inputs:
// mT[s] = sum_c w[s][c] * xT[cand[s][c]]. The mixture is node-major, so the WARP kernels above read it as a layer
// input wired one-to-one. One row per slot, never the (S, C, B) gather the plain path materialises.
// 8 floats as one GCC/Clang vector value: the mixture's accumulators stay in registers while the C candidate rows
// stream past (plain arrays are spilled to the stack once per candidate).
typedef float v8f __attribute__((vector_size(32)));
inline v8f load8(const float* p) { v8f v; std::memcpy(&v, p, sizeof(v)); return v; }
inline void store8(float* p, v8f v) { std::memcpy(p, &v, sizeof(v)); }

// dst[b] = sum_{i < n} wt(i) * row(i)[b], 32 batch lanes at a time in 4 vector accumulators.
template <class Row, class Weight>
inline __attribute__((always_inline)) void weighted_row_sum(int64_t B, int64_t n, Row row, Weight wt, float* dst) {
  int64_t b0 = 0;
  for (; b0 + 32 <= B; b0 += 32) {
    v8f a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int64_t i = 0; i < n; ++i) {
      const float* r = row(i) + b0;
      const float wi = wt(i);
      a0 += wi * load8(r);
      a1 += wi * load8(r + 8);
      a2 += wi * load8(r + 16);
      a3 += wi * load8(r + 24);
    }
    store8(dst + b0, a0);
    store8(dst + b0 + 8, a1);
    store8(dst + b0 + 16, a2);
    store8(dst + b0 + 24, a3);
  }
  for (; b0 < B; ++b0) {  // batch tail
    float a = 0.0f;
    for (int64_t i = 0; i < n; ++i) a += wt(i) * row(i)[b0];
    dst[b0] = a;
  }
}

WARPC_CLONES void mix_rows(int64_t s0, int64_t s1, int64_t B, int64_t C, const float* x, const int32_t* cand,
                           const float* w, float* m) {
  for (int64_t s = s0; s < s1; ++s) {
    const int32_t* cs = cand + s * C;
    const float* ws = w + s * C;
    weighted_row_sum(B, C, [&](int64_t c) { return x + static_cast<int64_t>(cs[c]) * B; },
                     [&](int64_t c) { return ws[c]; }, m + s * B);
  }
}

inline float hsum8(v8f v) {
  float t[8];
  std::memcpy(t, &v, sizeof(t));
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

// dL/dw[s][c] = <gT[s], xT[cand[s][c]]>: one thread per slot, no atomics. Four candidates at a time share each
// load of the gradient row (four independent vector accumulators).
WARPC_CLONES void mix_grad_w(int64_t s0, int64_t s1, int64_t B, int64_t C, const float* g, const float* x,
                             const int32_t* cand, float* gw) {
  const int64_t B8 = B - B % 8;
  for (int64_t s = s0; s < s1; ++s) {
    const float* gr = g + s * B;
    const int32_t* cs = cand + s * C;
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) {
      const float* x0 = x + static_cast<int64_t>(cs[c]) * B;
      const float* x1 = x + static_cast<int64_t>(cs[c + 1]) * B;
      const float* x2 = x + static_cast<int64_t>(cs[c + 2]) * B;
      const float* x3 = x + static_cast<int64_t>(cs[c + 3]) * B;
      v8f a0 = {}, a1 = {}, a2 = {}, a3 = {};
      for (int64_t b = 0; b < B8; b += 8) {
        const v8f gv = load8(gr + b);
        a0 += gv * load8(x0 + b);
        a1 += gv * load8(x1 + b);
        a2 += gv * load8(x2 + b);
        a3 += gv * load8(x3 + b);
      }
      float r0 = hsum8(a0), r1 = hsum8(a1), r2 = hsum8(a2), r3 = hsum8(a3);
      for (int64_t b = B8; b < B; ++b) {
        r0 += gr[b] * x0[b];
        r1 += gr[b] * x1[b];
        r2 += gr[b] * x2[b];
        r3 += gr[b] * x3[b];
      }
      gw[s * C + c] = r0;
      gw[s * C + c + 1] = r1;
      gw[s * C + c + 2] = r2;
      gw[s * C + c + 3] = r3;
    }
    for (; c < C; ++c) {  // candidate tail
      const float* xr = x + static_cast<int64_t>(cs[c]) * B;
      float sum = 0.0f;
      for (int64_t b = 0; b < B; ++b) sum += gr[b] * xr[b];
      gw[s * C + c] = sum;
    }
  }
}

// dL/dxT[p] = sum over the (slot, candidate) pairs q reading p of w[q] * gT[q / C]: through the reverse index
// (CSR rev_ptr / rev_pair, sorted), so each input row is written by one thread in a fixed order.
WARPC_CLONES void mix_grad_x(int64_t p0, int64_t p1, int64_t B, int64_t C, const float* g, const float* w,
                             const int64_t* rp, const int32_t* rq, float* gx) {
  for (int64_t p = p0; p < p1; ++p) {
    const int32_t* qs = rq + rp[p];
    weighted_row_sum(B, rp[p + 1] - rp[p], [&](int64_t i) { return g + (qs[i] / C) * B; },
                     [&](int64_t i) { return w[qs[i]]; }, gx + p * B);
  }
}


}  // namespace

// ---- C API (ctypes) ------------------------------------------------------------------------------------------
// All arrays are contiguous; shapes are checked by the Python caller. Returns 0, or a negative code for arguments
// that the caller should never pass (a bug, reported as such).
extern "C" {

int warpc_abi_version() { return 3; }

void warpc_set_openmp(int on) { g_use_openmp = on; }

// xT (n_in, B), idx (out, k) int32, theta (out, 2^k); noise_mode 0 none / 1 hash(seed) / 2 explicit noiseT (out, B).
// noise_row0 / noise_stride: mode 1 draws the noise of rows [noise_row0, noise_row0 + B) of a batch of noise_stride
// rows (0 / B for a whole batch). lin: linear output y = z (DLGN; no noise, no sigmoid). Writes yT (out, B) (hard for straight-through) and, when
// st, ysT (out, B), the soft output kept for backward (pass ysT == yT otherwise).
int warpc_forward(const float* xT, const int32_t* idx, const float* theta, int64_t B, int64_t out, int k,
                  float inv_tau, int noise_mode, uint64_t seed, const float* noiseT, int64_t noise_row0,
                  int64_t noise_stride, int st, int lin, float* yT, float* ysT, int nthreads) {
  if (k < 2 || k > 6) return -1;
  if (noise_row0 < 0 || noise_row0 + B > noise_stride) return -3;
  const Noise nz{noise_mode, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), noiseT, noise_row0,
                 noise_stride};
  par_for(out, grain_for(B, k), nthreads, [&](int64_t j0, int64_t j1) {
    switch (k) {
      case 2: forward_k2(j0, j1, B, xT, idx, theta, inv_tau, nz, st, lin, yT, ysT); break;
      case 3: forward_k3(j0, j1, B, xT, idx, theta, inv_tau, nz, st, lin, yT, ysT); break;
      case 4: forward_k4(j0, j1, B, xT, idx, theta, inv_tau, nz, st, lin, yT, ysT); break;
      case 5: forward_k5(j0, j1, B, xT, idx, theta, inv_tau, nz, st, lin, yT, ysT); break;
      default: forward_k6(j0, j1, B, xT, idx, theta, inv_tau, nz, st, lin, yT, ysT); break;
    }
  });
  return 0;
}

// gT (out, B) upstream gradient, ysT the soft output. rev_ptr (n_in + 1) / rev_slot (out * k): CSR of the slots
// (j * k + i) that read each input. Writes gtheta (out, 2^k) and, when gxT is not null, gxT (n_in, B); buf is
// scratch (out * k, B), needed only with gxT and more than one thread.
int warpc_backward(const float* gT, const float* xT, const int32_t* idx, const float* theta, const float* ysT,
                   int64_t n_in, int64_t B, int64_t out, int k, float inv_tau, const int64_t* rev_ptr,
                   const int32_t* rev_slot, int lin, float* gtheta, float* gxT, float* buf, int nthreads) {
  if (k < 2 || k > 6) return -1;
  // With one thread the input gradient is accumulated in place; with more, through the scratch buffer and the
  // reverse index (no atomics, deterministic, same summation order either way). direct: nodes run in slot order,
  // so input p's first contribution comes from its lowest consumer slot, rev_slot[rev_ptr[p]] (the CSR is
  // sorted); that one stores, later ones add. Unread rows are zeroed below.
  const bool direct = gxT != nullptr && nthreads <= 1;
  if (gxT != nullptr && !direct && buf == nullptr) return -2;
  float* bf = (gxT != nullptr && !direct) ? buf : nullptr;
  float* gd = direct ? gxT : nullptr;
  par_for(out, grain_for(B, k), nthreads, [&](int64_t j0, int64_t j1) {
    switch (k) {
      case 2: backward_k2(j0, j1, B, gT, xT, idx, theta, ysT, inv_tau, lin, gtheta, bf, gd, rev_ptr, rev_slot); break;
      case 3: backward_k3(j0, j1, B, gT, xT, idx, theta, ysT, inv_tau, lin, gtheta, bf, gd, rev_ptr, rev_slot); break;
      case 4: backward_k4(j0, j1, B, gT, xT, idx, theta, ysT, inv_tau, lin, gtheta, bf, gd, rev_ptr, rev_slot); break;
      case 5: backward_k5(j0, j1, B, gT, xT, idx, theta, ysT, inv_tau, lin, gtheta, bf, gd, rev_ptr, rev_slot); break;
      default: backward_k6(j0, j1, B, gT, xT, idx, theta, ysT, inv_tau, lin, gtheta, bf, gd, rev_ptr, rev_slot); break;
    }
  });
  if (direct) {
    for (int64_t p = 0; p < n_in; ++p)
      if (rev_ptr[p] == rev_ptr[p + 1]) std::memset(gxT + p * B, 0, sizeof(float) * B);
  } else if (gxT != nullptr) {
    // Input gradient through the reverse index: each input sums its consumers' rows, no atomics.
    par_for(n_in, 16384 / std::max<int64_t>(1, B), nthreads, [&](int64_t p0, int64_t p1) {
      gather_rows(p0, p1, B, rev_ptr, rev_slot, bf, gxT);
    });
  }
  return 0;
}

// The logistic noise the forward adds for a given seed, node-major (out, B): lets tests feed the reference.
void warpc_noise(uint64_t seed, int64_t out, int64_t B, float* nT, int nthreads) {
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  par_for(out * B, 65536, nthreads, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) nT[c] = logistic_from_counter(static_cast<uint32_t>(c), k0, k1);
  });
}

// Thermometer encoder, node-major: x (B, F) float32 features, thresholds (F, T) int64 -> bits (F * T, B) float32,
// bits[f * T + j][b] = x[b][f] >= float(t[f][j]) (the same compare, in float, as the PyTorch encoder). One pass
// and no bool temporary; the first fused layer reads the result without a transpose.
void warpc_thermometer(const float* xp, const int64_t* tp, int64_t B, int64_t F, int64_t T, float* op, int nthreads) {
  par_for(F, 16384 / std::max<int64_t>(1, B * T), nthreads, [&](int64_t f0, int64_t f1) {
    std::vector<float> col(B);
    for (int64_t f = f0; f < f1; ++f) {
      for (int64_t b = 0; b < B; ++b) col[b] = xp[b * F + f];
      for (int64_t j = 0; j < T; ++j) {
        const float t = static_cast<float>(tp[f * T + j]);
        float* o = op + (f * T + j) * B;
        for (int64_t b = 0; b < B; ++b) o[b] = col[b] >= t ? 1.0f : 0.0f;
      }
    }
  });
}

// (B, n) float32 with element strides (sb, sn) -> (n, B) contiguous, in cache tiles: torch's generic strided copy
// is several times slower for this access pattern.
void warpc_node_major(const float* src, int64_t B, int64_t n, int64_t sb, int64_t sn, float* dst, int nthreads) {
  constexpr int64_t T = 32;
  par_for((n + T - 1) / T, 4096 / std::max<int64_t>(1, B), nthreads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t j0 = t * T, j1 = std::min(n, j0 + T);
      for (int64_t b0 = 0; b0 < B; b0 += T) {
        const int64_t b1 = std::min(B, b0 + T);
#if defined(__SSE2__)
        if (sn == 1 && j1 - j0 == T && b1 - b0 == T) {  // full tile, rows contiguous: 4x4 SSE transposes
          for (int64_t b = b0; b < b1; b += 4)
            for (int64_t j = j0; j < j1; j += 4) {
              __m128 r0 = _mm_loadu_ps(src + (b + 0) * sb + j), r1 = _mm_loadu_ps(src + (b + 1) * sb + j);
              __m128 r2 = _mm_loadu_ps(src + (b + 2) * sb + j), r3 = _mm_loadu_ps(src + (b + 3) * sb + j);
              _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
              _mm_storeu_ps(dst + (j + 0) * B + b, r0);
              _mm_storeu_ps(dst + (j + 1) * B + b, r1);
              _mm_storeu_ps(dst + (j + 2) * B + b, r2);
              _mm_storeu_ps(dst + (j + 3) * B + b, r3);
            }
          continue;
        }
#endif
        for (int64_t b = b0; b < b1; ++b)
          for (int64_t j = j0; j < j1; ++j) dst[j * B + b] = src[b * sb + j * sn];
      }
    }
  });
}

// Learnable wiring forward: xT (n_in, B), cand (S, C) int32, w (S, C) -> mT (S, B).
void warpc_mix_forward(const float* xT, const int32_t* cand, const float* w, int64_t S, int64_t C, int64_t B,
                       float* mT, int nthreads) {
  par_for(S, 32768 / std::max<int64_t>(1, B * C), nthreads, [&](int64_t s0, int64_t s1) {
    mix_rows(s0, s1, B, C, xT, cand, w, mT);
  });
}

// gT (S, B) gradient of the mixture; rev_ptr (n_in + 1) / rev_pair (S * C): CSR of the pairs s * C + c reading
// each input. Writes gw (S, C) and, when gxT is not null, gxT (n_in, B).
void warpc_mix_backward(const float* gT, const float* xT, const int32_t* cand, const float* w, int64_t S, int64_t C,
                        int64_t B, int64_t n_in, const int64_t* rev_ptr, const int32_t* rev_pair, float* gw,
                        float* gxT, int nthreads) {
  par_for(S, 32768 / std::max<int64_t>(1, B * C), nthreads, [&](int64_t s0, int64_t s1) {
    mix_grad_w(s0, s1, B, C, gT, xT, cand, gw);
  });
  if (gxT != nullptr) {
    par_for(n_in, 16384 / std::max<int64_t>(1, B), nthreads, [&](int64_t p0, int64_t p1) {
      mix_grad_x(p0, p1, B, C, gT, w, rev_ptr, rev_pair, gxT);
    });
  }
}

}  // extern "C"
