// Fused WARP-LUT forward/backward for the CPU (PyTorch C++ extension, built on first use).
//
// Layout: activations are node-major ("transposed", nodes x batch, contiguous) so that the gather of a node's
// k inputs reads k contiguous rows and every inner loop runs over the batch and vectorises. Nodes are split
// across threads with at::parallel_for; each node's reductions run in one thread, so results do not depend on
// the thread count. Transcendentals are small polynomial versions written in plain float arithmetic so that
// the compiler vectorises them with any instruction set (no -march=native, no -ffast-math needed).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

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
        const uint32_t c0 = static_cast<uint32_t>(j * B + b0);
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
        const uint32_t c0 = static_cast<uint32_t>(j * B + b0);
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
          if (gx != nullptr) {  // one thread: accumulate straight into the input gradient (same order as CSR)
            const int64_t p = idx[j * K + i];
            float* gr = gx + p * B + b0;
            if (rev_slot[rev_ptr[p]] != static_cast<int32_t>(j * K + i)) {
              for (int b = 0; b < n; ++b) gr[b] += -2.0f * gz[b] * d[b];
            } else {  // input p's first consumer (lowest slot) stores: no zero-fill pass, and 0 + v == v
              for (int b = 0; b < n; ++b) gr[b] = -2.0f * gz[b] * d[b];
            }
          } else {
            float* br = buf + (j * K + i) * B + b0;
            for (int b = 0; b < n; ++b) br[b] = -2.0f * gz[b] * d[b];
          }
        }
      }
    }
    for (int m = 0; m < M; ++m) gtheta[j * M + m] = acc[m];
  }
}

// Per-k entry points, cloned for x86-64-v3 (AVX2 + FMA) and baseline x86-64 (picked at load time by the dynamic
// loader), so the binary stays portable and still uses 8-wide vectors where the CPU has them. The forward also
// gets an x86-64-v4 (AVX-512) clone: ~20% faster with the hashed noise on this Zen 4 CPU (0.42 -> 0.33 ms per
// 2,000 x 128 layer); the backward was not faster with it (0.21 -> 0.27 ms), so it keeps two.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define WARPC_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define WARPC_CLONES_FWD __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define WARPC_CLONES
#define WARPC_CLONES_FWD
#endif
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
    for (int64_t b = 0; b < B; ++b) dst[b] = 0.0f;
    for (int64_t t = rp[p]; t < rp[p + 1]; ++t) {
      const float* src = bf + static_cast<int64_t>(rs[t]) * B;
      for (int64_t b = 0; b < B; ++b) dst[b] += src[b];
    }
  }
}

void check_f32_contig(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == torch::kFloat32, name, " must be float32");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

int64_t grain_for(int64_t B, int k) {
  // ~32k element-terms per task: enough work to amortise scheduling, enough tasks to balance.
  const int64_t per_node = std::max<int64_t>(1, B * (int64_t(1) << k));
  return std::max<int64_t>(1, 32768 / per_node);
}

}  // namespace

// xT (in, B), idx (out, k) int32, theta (out, 2^k); noise_mode 0 none / 1 hash(seed) / 2 explicit noiseT (out, B).
// lin: linear output y = z (DLGN through its Walsh coefficients; no noise, no sigmoid, st must be false).
// Returns (yT, ysT): yT is the layer output (hard for straight-through), ysT the soft output kept for backward
// (an alias of yT unless st).
std::vector<torch::Tensor> warp_forward(torch::Tensor xT, torch::Tensor idx, torch::Tensor theta, double tau,
                                        int64_t noise_mode, int64_t seed, torch::Tensor noiseT, bool st, bool lin) {
  check_f32_contig(xT, "xT");
  check_f32_contig(theta, "theta");
  TORCH_CHECK(idx.scalar_type() == torch::kInt32 && idx.is_contiguous() && idx.dim() == 2, "idx must be int32 (out, k)");
  const int64_t B = xT.size(1), out = idx.size(0);
  const int k = static_cast<int>(idx.size(1));
  TORCH_CHECK(k >= 2 && k <= 6, "k must be 2..6");
  TORCH_CHECK(theta.size(0) == out && theta.size(1) == (int64_t(1) << k), "theta shape mismatch");
  TORCH_CHECK(out * B < (int64_t(1) << 32), "layer too large for the 32-bit noise counter");
  Noise nz{static_cast<int>(noise_mode), static_cast<uint32_t>(seed), static_cast<uint32_t>(uint64_t(seed) >> 32), nullptr};
  if (noise_mode == 2) {
    check_f32_contig(noiseT, "noiseT");
    TORCH_CHECK(noiseT.size(0) == out && noiseT.size(1) == B, "noise shape mismatch");
    nz.ext = noiseT.data_ptr<float>();
  }
  auto yT = torch::empty({out, B}, xT.options());
  auto ysT = st ? torch::empty({out, B}, xT.options()) : yT;
  const float* x = xT.data_ptr<float>();
  const int32_t* ix = idx.data_ptr<int32_t>();
  const float* th = theta.data_ptr<float>();
  float* y = yT.data_ptr<float>();
  float* ys = ysT.data_ptr<float>();
  const float inv_tau = static_cast<float>(1.0 / tau);
  at::parallel_for(0, out, grain_for(B, k), [&](int64_t j0, int64_t j1) {
    switch (k) {
      case 2: forward_k2(j0, j1, B, x, ix, th, inv_tau, nz, st, lin, y, ys); break;
      case 3: forward_k3(j0, j1, B, x, ix, th, inv_tau, nz, st, lin, y, ys); break;
      case 4: forward_k4(j0, j1, B, x, ix, th, inv_tau, nz, st, lin, y, ys); break;
      case 5: forward_k5(j0, j1, B, x, ix, th, inv_tau, nz, st, lin, y, ys); break;
      default: forward_k6(j0, j1, B, x, ix, th, inv_tau, nz, st, lin, y, ys); break;
    }
  });
  return {yT, ysT};
}

// gT (out, B) upstream gradient, ysT the soft output. rev_ptr (in + 1) / rev_slot (out * k): CSR of the slots
// (j * k + i) that read each input. Returns (gtheta (out, 2^k), gxT (in, B) or an empty tensor).
std::vector<torch::Tensor> warp_backward(torch::Tensor gT, torch::Tensor xT, torch::Tensor idx, torch::Tensor theta,
                                         torch::Tensor ysT, double tau, torch::Tensor rev_ptr, torch::Tensor rev_slot,
                                         bool need_gx, bool lin) {
  check_f32_contig(gT, "gT");
  check_f32_contig(xT, "xT");
  check_f32_contig(theta, "theta");
  check_f32_contig(ysT, "ysT");
  const int64_t n_in = xT.size(0), B = xT.size(1), out = idx.size(0);
  const int k = static_cast<int>(idx.size(1));
  auto gtheta = torch::empty_like(theta);
  torch::Tensor buf, gxT;
  if (need_gx) {
    TORCH_CHECK(rev_ptr.scalar_type() == torch::kInt64 && rev_ptr.numel() == n_in + 1, "rev_ptr must be int64 (in + 1)");
    TORCH_CHECK(rev_slot.scalar_type() == torch::kInt32 && rev_slot.numel() == out * k, "rev_slot must be int32 (out * k)");
    gxT = torch::empty({n_in, B}, xT.options());
  }
  // With one thread the input gradient is accumulated in place; with more, through a scratch buffer and the
  // reverse index (no atomics, deterministic, same summation order either way).
  const bool direct = need_gx && at::get_num_threads() == 1;
  if (need_gx && !direct) buf = torch::empty({out * k, B}, xT.options());
  // direct: nodes run in slot order, so input p's first contribution comes from its lowest consumer slot,
  // rev_slot[rev_ptr[p]] (the CSR is sorted); that one stores, later ones add. Unread rows are zeroed below.
  const int64_t* rpp = need_gx ? rev_ptr.data_ptr<int64_t>() : nullptr;
  const int32_t* rsp = need_gx ? rev_slot.data_ptr<int32_t>() : nullptr;
  const float* g = gT.data_ptr<float>();
  const float* x = xT.data_ptr<float>();
  const int32_t* ix = idx.data_ptr<int32_t>();
  const float* th = theta.data_ptr<float>();
  const float* ys = ysT.data_ptr<float>();
  float* gth = gtheta.data_ptr<float>();
  float* bf = (need_gx && !direct) ? buf.data_ptr<float>() : nullptr;
  float* gd = direct ? gxT.data_ptr<float>() : nullptr;
  const float inv_tau = static_cast<float>(1.0 / tau);
  at::parallel_for(0, out, grain_for(B, k), [&](int64_t j0, int64_t j1) {
    switch (k) {
      case 2: backward_k2(j0, j1, B, g, x, ix, th, ys, inv_tau, lin, gth, bf, gd, rpp, rsp); break;
      case 3: backward_k3(j0, j1, B, g, x, ix, th, ys, inv_tau, lin, gth, bf, gd, rpp, rsp); break;
      case 4: backward_k4(j0, j1, B, g, x, ix, th, ys, inv_tau, lin, gth, bf, gd, rpp, rsp); break;
      case 5: backward_k5(j0, j1, B, g, x, ix, th, ys, inv_tau, lin, gth, bf, gd, rpp, rsp); break;
      default: backward_k6(j0, j1, B, g, x, ix, th, ys, inv_tau, lin, gth, bf, gd, rpp, rsp); break;
    }
  });
  if (direct) {
    float* gx = gxT.data_ptr<float>();
    for (int64_t p = 0; p < n_in; ++p)
      if (rpp[p] == rpp[p + 1]) std::memset(gx + p * B, 0, sizeof(float) * B);
  }
  if (need_gx && !direct) {
    // Input gradient through the reverse index: each input sums its consumers' rows, no atomics.
    const int64_t* rp = rev_ptr.data_ptr<int64_t>();
    const int32_t* rs = rev_slot.data_ptr<int32_t>();
    float* gx = gxT.data_ptr<float>();
    at::parallel_for(0, n_in, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, B)), [&](int64_t p0, int64_t p1) {
      gather_rows(p0, p1, B, rp, rs, bf, gx);
    });
  }
  return {gtheta, need_gx ? gxT : torch::Tensor()};
}

// The logistic noise the forward adds for a given seed, node-major (out, B): lets tests feed the reference.
torch::Tensor warp_noise(int64_t seed, int64_t out, int64_t B) {
  auto nT = torch::empty({out, B}, torch::TensorOptions().dtype(torch::kFloat32));
  float* p = nT.data_ptr<float>();
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(uint64_t(seed) >> 32);
  at::parallel_for(0, out * B, 65536, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) p[c] = logistic_from_counter(static_cast<uint32_t>(c), k0, k1);
  });
  return nT;
}

// Thermometer encoder, node-major: x (B, F) float32 features, thresholds (F, T) int64 -> bits (F * T, B) float32,
// bits[f * T + j][b] = x[b][f] >= float(t[f][j]) (the same compare, in float, as the PyTorch encoder). One pass
// and no bool temporary; the first fused layer reads the result without a transpose.
torch::Tensor thermometer(torch::Tensor x, torch::Tensor thr) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat32 && x.device().is_cpu(), "x must be (B, F) float32 CPU");
  TORCH_CHECK(thr.dim() == 2 && thr.scalar_type() == torch::kInt64 && thr.size(0) == x.size(1), "thresholds must be (F, T) int64");
  x = x.contiguous();
  thr = thr.contiguous();
  const int64_t B = x.size(0), F = x.size(1), T = thr.size(1);
  auto out = torch::empty({F * T, B}, x.options());
  const float* xp = x.data_ptr<float>();
  const int64_t* tp = thr.data_ptr<int64_t>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, F, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, B * T)), [&](int64_t f0, int64_t f1) {
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
  return out;
}

// (B, n) float32 with any strides (a batch-major input, an expanded gradient) -> (n, B) contiguous, in cache
// tiles: torch's generic strided copy is several times slower for this access pattern.
torch::Tensor node_major(torch::Tensor x) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat32 && x.device().is_cpu(), "x must be 2-D float32 CPU");
  const int64_t B = x.size(0), n = x.size(1), sb = x.stride(0), sn = x.stride(1);
  auto out = torch::empty({n, B}, x.options().memory_format(at::MemoryFormat::Contiguous));
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  constexpr int64_t T = 32;
  at::parallel_for(0, (n + T - 1) / T, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, B)), [&](int64_t t0, int64_t t1) {
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
  return out;
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

void check_mix_args(const torch::Tensor& xT, const torch::Tensor& cand, const torch::Tensor& w) {
  check_f32_contig(xT, "xT");
  check_f32_contig(w, "w");
  TORCH_CHECK(cand.scalar_type() == torch::kInt32 && cand.is_contiguous() && cand.dim() == 2,
              "cand must be int32 (slots, candidates)");
  TORCH_CHECK(w.dim() == 2 && w.size(0) == cand.size(0) && w.size(1) == cand.size(1), "w must match cand");
  TORCH_CHECK(cand.size(1) >= 1, "at least one candidate per slot");
}

// xT (in, B), cand (S, C) int32, w (S, C) -> mT (S, B).
torch::Tensor mix_forward(torch::Tensor xT, torch::Tensor cand, torch::Tensor w) {
  check_mix_args(xT, cand, w);
  const int64_t S = cand.size(0), C = cand.size(1), B = xT.size(1);
  auto mT = torch::empty({S, B}, xT.options());
  const float* x = xT.data_ptr<float>();
  const int32_t* cd = cand.data_ptr<int32_t>();
  const float* wp = w.data_ptr<float>();
  float* m = mT.data_ptr<float>();
  at::parallel_for(0, S, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, B * C)), [&](int64_t s0, int64_t s1) {
    mix_rows(s0, s1, B, C, x, cd, wp, m);
  });
  return mT;
}

// gT (S, B) gradient of the mixture; rev_ptr (in + 1) / rev_pair (S * C): CSR of the pairs s * C + c reading
// each input. Returns (gw (S, C), gxT (in, B) or an empty tensor).
std::vector<torch::Tensor> mix_backward(torch::Tensor gT, torch::Tensor xT, torch::Tensor cand, torch::Tensor w,
                                        torch::Tensor rev_ptr, torch::Tensor rev_pair, bool need_gx) {
  check_mix_args(xT, cand, w);
  check_f32_contig(gT, "gT");
  const int64_t S = cand.size(0), C = cand.size(1), B = xT.size(1), n_in = xT.size(0);
  TORCH_CHECK(gT.size(0) == S && gT.size(1) == B, "gT shape mismatch");
  auto gw = torch::empty({S, C}, xT.options());
  const float* g = gT.data_ptr<float>();
  const float* x = xT.data_ptr<float>();
  const int32_t* cd = cand.data_ptr<int32_t>();
  const float* wp = w.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, B * C));
  at::parallel_for(0, S, grain, [&](int64_t s0, int64_t s1) { mix_grad_w(s0, s1, B, C, g, x, cd, gw.data_ptr<float>()); });
  torch::Tensor gxT;
  if (need_gx) {
    TORCH_CHECK(rev_ptr.scalar_type() == torch::kInt64 && rev_ptr.numel() == n_in + 1, "rev_ptr must be int64 (in + 1)");
    TORCH_CHECK(rev_pair.scalar_type() == torch::kInt32 && rev_pair.numel() == S * C, "rev_pair must be int32 (S * C)");
    gxT = torch::empty({n_in, B}, xT.options());
    const int64_t* rp = rev_ptr.data_ptr<int64_t>();
    const int32_t* rq = rev_pair.data_ptr<int32_t>();
    float* gx = gxT.data_ptr<float>();
    at::parallel_for(0, n_in, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, B)), [&](int64_t p0, int64_t p1) {
      mix_grad_x(p0, p1, B, C, g, wp, rp, rq, gx);
    });
  }
  return {gw, gxT};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("node_major", &node_major, "(B, n) any strides -> (n, B) contiguous");
  m.def("forward", &warp_forward, "fused WARP-LUT forward (node-major)");
  m.def("backward", &warp_backward, "fused WARP-LUT backward (node-major, reverse-index input gradient)");
  m.def("noise", &warp_noise, "the kernel's logistic noise (out, B) for a seed");
  m.def("thermometer", &thermometer, "thermometer bits, node-major (F*T, B)");
  m.def("mix_forward", &mix_forward, "learnable wiring: softmax mixture of candidate rows (node-major)");
  m.def("mix_backward", &mix_backward, "learnable wiring backward (reverse-index input gradient)");
}
