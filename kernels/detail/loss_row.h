// @brief One row of the fused parametrization + Bregman loss + gradient
// (kernels/loss.h), written once for a "team" of threads that share the row:
// the CUDA backend instantiates it with a warp or a thread block
// (kernels/cuda/loss.cu); the tests instantiate it with a serial team of one
// host thread and compare it with the CPU backend, so the formulas the GPU
// runs are checked on machines without a GPU.
//
// A Team provides: rank() and size() (thread t handles elements t, t +
// size(), ...), Max(float), SumF(float), SumD(double), All(bool) (every
// member gets the reduced value) and Sync() (a barrier that also orders the
// members' memory writes).
//
// Formulas (kernels/loss.h): softmax-family rows use an online max/sum pass,
// then (dense targets, or BCE) one pass for the loss and BG = sum_{k != x}
// b_k dD/db_k, and one gradient pass dL/dz_k = gw (bg_k - p_k BG); sparse
// targets start from the a = 0 baseline in closed form (Poisson, KL, MSE)
// and swap in their target terms. Elementwise rows take one pass with every
// a = 0, then swap in the targets. Float arithmetic with the same
// exponential as the CPU float path (ExpEvF for the softmax family), loss terms
// accumulated in double.
//
// Example (host, serial):
//   detail::SerialTeam team;
//   detail::LossRow<detail::SerialTeam, Divergence::kPoisson, false>(team, in, &out);
#ifndef JUMPFLOW_KERNELS_DETAIL_LOSS_ROW_H_
#define JUMPFLOW_KERNELS_DETAIL_LOSS_ROW_H_

#include <cmath>
#include <cstdint>

#include "kernels/detail/fast_math.h"
#include "kernels/parametrization.h"

namespace jumpflow::kernels::detail {

// SerialTeam is a team of one thread (host emulation of the GPU row code).
struct SerialTeam {
  int rank() const { return 0; }
  int size() const { return 1; }
  float Max(float v) const { return v; }
  float SumF(float v) const { return v; }
  double SumD(double v) const { return v; }
  bool All(bool v) const { return v; }
  void Sync() const {}
};

// LossRowIn is one row's inputs (pointers are the row's own slices).
struct LossRowIn {
  Parametrization param;
  int64_t v;               // targets per row
  const float* raw;        // [cols]
  const float* dense;      // [v] or null
  const int32_t* sp_cols;  // [nnz] (sparse) or null
  const float* sp_vals;    // [nnz]
  int64_t nnz;
  int32_t exclude;  // excluded column or -1
  float c, log_c;   // row scale and its log
  float gw;         // gradient weight: row weight x reduction scale
  float* grad;      // [cols] or null
};

// LoadLast and StoreOnce are, on the GPU, a load and a store marked
// evict-first (ld/st.global.cs; plain ones on the host): pass C reads each
// logit for the last time and writes each gradient entry once, and neither
// should push out of the L2 the rows that other teams' pass A has just read
// and their pass C will read again. On the H200 at V = 32768 (rows of 128
// KiB) this took the block kernel from 274 to 233 us; at V = 1024 58.5 ->
// 56.7 us.
JUMPFLOW_HD float LoadLast(const float* p) {
#if defined(__CUDA_ARCH__)
  return __ldcs(p);
#else
  return *p;
#endif
}
JUMPFLOW_HD void StoreOnce(float* p, float v) {
#if defined(__CUDA_ARCH__)
  __stcs(p, v);
#else
  *p = v;
#endif
}

// LossRowOut is the row's unweighted loss sum_j D and whether it was finite.
struct LossRowOut {
  double loss;
  bool finite;
};

// kMaxExpArgF is kMaxExpArg<float> (a plain constant for device code).
constexpr float kMaxExpArgF = 80.0f;

// kBceFloorF is the smallest 1 - b used by BCE (kernels/loss.h).
constexpr float kBceFloorF = 1.1920928955078125e-07f;

// PredF is one prediction b with what the divergences need.
struct PredF {
  float b, log_b;             // b and log b
  float q, bq;                // dlog b / dz and db / dz (elementwise rows)
  float log_one_minus_b;      // BCE: log(1 - b), at the floor
  float bq_over_one_minus_b;  // BCE: bq / (1 - b), 0 at the floor
};

JUMPFLOW_HD float XLogXF(float a) { return a > 0.0f && a != 1.0f ? a * logf(a) : 0.0f; }

JUMPFLOW_HD float SoftplusRef(float z) { return z > 0.0f ? z + log1pf(expf(-z)) : log1pf(expf(z)); }
JUMPFLOW_HD float SigmoidRef(float z) {
  if (z >= 0.0f) return 1.0f / (1.0f + expf(-z));
  const float e = expf(z);
  return e / (1.0f + e);
}
JUMPFLOW_HD float LogSoftplusRef(float z) {
  if (z < -20.0f) return z - 0.5f * expf(z);
  return logf(SoftplusRef(z));
}
JUMPFLOW_HD float SigmoidOverSoftplusRef(float z) {
  if (z < -20.0f) return 1.0f - 0.5f * expf(z);
  return SigmoidRef(z) / SoftplusRef(z);
}

// FillBce fills the BCE fields from b and bq (floor as in kernels/loss.h).
JUMPFLOW_HD void FillBce(PredF* p) {
  const float omb = 1.0f - p->b;
  if (omb >= kBceFloorF) {
    p->log_one_minus_b = p->b < 0.5f ? log1pf(-p->b) : logf(omb);
    p->bq_over_one_minus_b = p->bq / omb;
  } else {
    p->log_one_minus_b = logf(kBceFloorF);
    p->bq_over_one_minus_b = 0.0f;
  }
}

// ElementwisePred evaluates softplus / exp / sigmoid at z with scale c.
template <bool kBce>
JUMPFLOW_HD PredF ElementwisePred(Parametrization param, float z, float c, float log_c) {
  PredF p{};
  if (param == Parametrization::kExp) {
    const float zc = z < kMaxExpArgF ? z : kMaxExpArgF;
    p.b = c * expf(zc);
    p.log_b = log_c + zc;
    p.q = z > kMaxExpArgF ? 0.0f : 1.0f;
    p.bq = p.b * p.q;
    if constexpr (kBce) FillBce(&p);
  } else if (param == Parametrization::kSoftplus) {
    p.b = c * SoftplusRef(z);
    p.log_b = log_c + LogSoftplusRef(z);
    p.q = SigmoidOverSoftplusRef(z);
    p.bq = c * SigmoidRef(z);
    if constexpr (kBce) FillBce(&p);
  } else {  // kSigmoid
    const float sig = SigmoidRef(z), sig_neg = SigmoidRef(-z);
    p.b = c * sig;
    p.log_b = log_c - SoftplusRef(-z);
    p.q = sig_neg;
    p.bq = c * sig * sig_neg;
    if constexpr (kBce) {
      if (c == 1.0f) {
        p.log_one_minus_b = -SoftplusRef(z);
        p.bq_over_one_minus_b = sig;
      } else if (c < 1.0f) {
        const float omb = sig_neg + (1.0f - c) * sig;
        p.log_one_minus_b = logf(omb);
        p.bq_over_one_minus_b = p.bq / omb;
      } else {
        FillBce(&p);
      }
    }
  }
  return p;
}

// SoftmaxPredOf builds a softmax-family prediction from b and log b.
template <bool kBce>
JUMPFLOW_HD PredF SoftmaxPredOf(float b, float log_b) {
  PredF p{};
  p.b = b;
  p.log_b = log_b;
  if constexpr (kBce) {
    p.bq = b;
    FillBce(&p);
  }
  return p;
}

template <Divergence D>
JUMPFLOW_HD float DivValue(float a, const PredF& p) {
  if constexpr (D == Divergence::kPoisson) return XLogXF(a) - a * p.log_b - a + p.b;
  if constexpr (D == Divergence::kGeneralizedKl) return XLogXF(a) - a * p.log_b;
  if constexpr (D == Divergence::kMse) return (a - p.b) * (a - p.b);
  return XLogXF(a) - a * p.log_b + XLogXF(1.0f - a) - (1.0f - a) * p.log_one_minus_b;
}

// DivDelta is D(a, b) - D(0, b).
template <Divergence D>
JUMPFLOW_HD float DivDelta(float a, const PredF& p) {
  if constexpr (D == Divergence::kPoisson) return XLogXF(a) - a * p.log_b - a;
  if constexpr (D == Divergence::kGeneralizedKl) return XLogXF(a) - a * p.log_b;
  if constexpr (D == Divergence::kMse) return a * (a - 2.0f * p.b);
  return XLogXF(a) + XLogXF(1.0f - a) - a * p.log_b + a * p.log_one_minus_b;
}

// ElemGrad is dD(a, b(z)) / dz for elementwise rows.
template <Divergence D>
JUMPFLOW_HD float ElemGrad(float a, const PredF& p) {
  if constexpr (D == Divergence::kPoisson) return p.bq - a * p.q;
  if constexpr (D == Divergence::kGeneralizedKl) return -a * p.q;
  if constexpr (D == Divergence::kMse) return 2.0f * (p.b - a) * p.bq;
  return -a * p.q + (1.0f - a) * p.bq_over_one_minus_b;
}

// SmBg is b dD/db for the softmax family.
template <Divergence D>
JUMPFLOW_HD float SmBg(float a, const PredF& p) {
  if constexpr (D == Divergence::kPoisson) return p.b - a;
  if constexpr (D == Divergence::kGeneralizedKl) return -a;
  if constexpr (D == Divergence::kMse) return 2.0f * p.b * (p.b - a);
  return -a + (1.0f - a) * p.bq_over_one_minus_b;
}

// SmBgDelta is SmBg(a, p) - SmBg(0, p).
template <Divergence D>
JUMPFLOW_HD float SmBgDelta(float a, const PredF& p) {
  if constexpr (D == Divergence::kPoisson || D == Divergence::kGeneralizedKl) return -a;
  if constexpr (D == Divergence::kMse) return -2.0f * p.b * a;
  return -a - a * p.bq_over_one_minus_b;
}

// kLoadBatch is the number of a thread's elements loaded together. On the
// H200 (ncu, kernel alone, Poisson with sparse targets) 8 beat 16 and 32,
// whose registers cost occupancy: V = 1024 59 / 64 / 133 us, V = 32768
// 293 / 324 / 332 us.
constexpr int kLoadBatch = 8;

// SoftmaxLossRow handles kSoftmax and the rate x softmax parametrizations.
template <class Team, Divergence D, bool kDense>
JUMPFLOW_HD LossRowOut SoftmaxLossRow(const Team& team, const LossRowIn& in) {
  constexpr bool kBce = D == Divergence::kBce;
  const bool has_rate = HasRateColumn(in.param);
  const float* z = in.raw + (has_rate ? 1 : 0);
  float* g = in.grad != nullptr ? in.grad + (has_rate ? 1 : 0) : nullptr;
  const int64_t v = in.v;
  const int32_t x = in.exclude;
  const int t0 = team.rank(), ts = team.size();

  // Pass A: online max and sums of e and e^2 (MSE), finiteness, a batch of kLoadBatch
  // elements at a time: the batch's loads are issued together before any
  // is used (one memory latency per batch, not per element, on the GPU),
  // then one max and at most one rescale per batch (the online softmax by
  // batches, as the event kernels do by chunks).
  float m = NegInfF(), s = 0.0f, s2 = 0.0f;
  bool fin = true;
  for (int64_t k0 = t0; k0 < v; k0 += kLoadBatch * ts) {
    float zb[kLoadBatch];
    for (int i = 0; i < kLoadBatch; ++i) {
      const int64_t k = k0 + i * ts;
      zb[i] = k < v ? z[k] : NegInfF();
    }
    float bm = NegInfF(), check = 0.0f;
    for (int i = 0; i < kLoadBatch && k0 + i * ts < v; ++i) {
      check += zb[i] - zb[i];  // 0 unless some value is inf or NaN
      bm = MaxF(bm, zb[i]);
    }
    if (!(check == 0.0f)) {
      fin = false;  // the row's result is discarded
      continue;
    }
    if (bm > m) {
      const float f = ExpEvF(m - bm);  // ~1e-38, times s = 0, on the first batch
      s *= f;
      if constexpr (D == Divergence::kMse) s2 *= f * f;
      m = bm;
    }
    for (int i = 0; i < kLoadBatch && k0 + i * ts < v; ++i) {
      const float e = ExpEvF(zb[i] - m);
      s += e;
      if constexpr (D == Divergence::kMse) s2 += e * e;
    }
  }
  if (has_rate && !(in.raw[0] - in.raw[0] == 0.0f)) fin = false;
  fin = team.All(fin);
  if (!fin) return {0.0, false};
  const float zmax = team.Max(m);
  const float f = ExpEvF(m - zmax);  // this thread's rescale (s = 0 when it had no element)
  const float sum = team.SumF(s * f);
  const float sum2 = D == Divergence::kMse ? team.SumF(s2 * f * f) : 0.0f;

  float lambda = in.c, log_lambda = in.log_c, q_lambda = 0.0f;
  if (in.param == Parametrization::kLogRateSoftmax) {
    const float zr = in.raw[0] < kMaxExpArgF ? in.raw[0] : kMaxExpArgF;
    lambda = in.c * expf(zr);
    log_lambda = in.log_c + zr;
    q_lambda = in.raw[0] > kMaxExpArgF ? 0.0f : 1.0f;
  } else if (in.param == Parametrization::kSoftplusRateSoftmax) {
    lambda = in.c * SoftplusRef(in.raw[0]);
    log_lambda = in.log_c + LogSoftplusRef(in.raw[0]);
    q_lambda = SigmoidOverSoftplusRef(in.raw[0]);
  }
  const float inv = 1.0f / sum;
  const float b_scale = lambda * inv;
  const float log_sum = logf(sum);
  const float e_x = x >= 0 ? ExpEvF(z[x] - zmax) : 0.0f;
  auto pred_of = [&](float zk, float e) {
    return SoftmaxPredOf<kBce>(b_scale * e, log_lambda + (zk - zmax) - log_sum);
  };
  auto pred_at = [&](int64_t k, float e) { return pred_of(z[k], e); };

  // Pass B: the loss and BG.
  double loss = 0.0, big_g = 0.0;
  if constexpr (kDense) {
    for (int64_t k = t0; k < v; k += ts) {
      if (k == x) continue;
      const float e = ExpEvF(z[k] - zmax);
      const PredF p = pred_at(k, e);
      const float a = in.dense[k];
      loss += DivValue<D>(a, p);
      big_g += SmBg<D>(a, p);
    }
  } else {
    if constexpr (D == Divergence::kBce) {
      for (int64_t k = t0; k < v; k += ts) {
        if (k == x) continue;
        const PredF p = pred_at(k, ExpEvF(z[k] - zmax));
        loss -= p.log_one_minus_b;
        big_g += p.bq_over_one_minus_b;
      }
    }
    for (int64_t t = t0; t < in.nnz; t += ts) {
      const int32_t k = in.sp_cols[t];
      if (k == x) continue;
      const float a = in.sp_vals[t];
      const PredF p = pred_at(k, ExpEvF(z[k] - zmax));
      loss += DivDelta<D>(a, p);
      big_g += SmBgDelta<D>(a, p);
    }
  }
  loss = team.SumD(loss);
  double bg_total = team.SumD(big_g);
  if constexpr (!kDense) {
    // Closed-form baselines (every column k != x with a = 0).
    if constexpr (D == Divergence::kPoisson) {
      const double base = static_cast<double>(b_scale) * (static_cast<double>(sum) - e_x);
      loss += base;
      bg_total += base;
    } else if constexpr (D == Divergence::kMse) {
      const double bs2 = static_cast<double>(b_scale) * b_scale;
      const double sq = bs2 * (static_cast<double>(sum2) - static_cast<double>(e_x) * e_x);
      loss += sq;
      bg_total += 2.0 * sq;
    }
  }
  if (g == nullptr) return {loss, true};

  // Pass C: the gradient.
  const float bg = static_cast<float>(bg_total);
  const float gw = in.gw;
  for (int64_t k0 = t0; k0 < v; k0 += kLoadBatch * ts) {
    float zb[kLoadBatch], ab[kLoadBatch];
    for (int i = 0; i < kLoadBatch; ++i) {
      const int64_t k = k0 + i * ts;
      zb[i] = k < v ? LoadLast(z + k) : 0.0f;
      ab[i] = kDense && k < v ? in.dense[k] : 0.0f;
    }
    for (int i = 0; i < kLoadBatch && k0 + i * ts < v; ++i) {
      const int64_t k = k0 + i * ts;
      const float e = ExpEvF(zb[i] - zmax);
      float gk;
      if (k == x) {
        gk = -gw * inv * e * bg;
      } else {
        gk = gw * (SmBg<D>(ab[i], pred_of(zb[i], e)) - inv * e * bg);
      }
      StoreOnce(g + k, gk);
    }
  }
  if constexpr (!kDense) {
    team.Sync();
    for (int64_t t = t0; t < in.nnz; t += ts) {
      const int32_t k = in.sp_cols[t];
      if (k == x) continue;
      const float e = ExpEvF(z[k] - zmax);
      g[k] = gw * (SmBg<D>(in.sp_vals[t], pred_at(k, e)) - inv * e * bg);
    }
  }
  if (has_rate && t0 == 0) in.grad[0] = gw * bg * q_lambda;
  return {loss, true};
}

// ElementwiseLossRow handles softplus, exp and sigmoid.
template <class Team, Divergence D, bool kDense>
JUMPFLOW_HD LossRowOut ElementwiseLossRow(const Team& team, const LossRowIn& in) {
  constexpr bool kBce = D == Divergence::kBce;
  const int t0 = team.rank(), ts = team.size();
  const int64_t v = in.v;
  bool fin = true;
  for (int64_t k = t0; k < v; k += ts) {
    if (!(in.raw[k] - in.raw[k] == 0.0f)) fin = false;
  }
  if (!team.All(fin)) return {0.0, false};
  double loss = 0.0;
  for (int64_t k = t0; k < v; k += ts) {
    if (k == in.exclude) {
      if (in.grad != nullptr) in.grad[k] = 0.0f;
      continue;
    }
    const float a = kDense ? in.dense[k] : 0.0f;
    const PredF p = ElementwisePred<kBce>(in.param, in.raw[k], in.c, in.log_c);
    loss += DivValue<D>(a, p);
    if (in.grad != nullptr) in.grad[k] = in.gw * ElemGrad<D>(a, p);
  }
  if constexpr (!kDense) {
    team.Sync();
    for (int64_t t = t0; t < in.nnz; t += ts) {
      const int32_t k = in.sp_cols[t];
      if (k == in.exclude) continue;
      const float a = in.sp_vals[t];
      const PredF p = ElementwisePred<kBce>(in.param, in.raw[k], in.c, in.log_c);
      loss += DivDelta<D>(a, p);
      if (in.grad != nullptr) in.grad[k] = in.gw * ElemGrad<D>(a, p);
    }
  }
  return {team.SumD(loss), true};
}

// LossRow dispatches on the parametrization family.
template <class Team, Divergence D, bool kDense>
JUMPFLOW_HD LossRowOut LossRow(const Team& team, const LossRowIn& in) {
  if (IsSoftmaxFamily(in.param)) return SoftmaxLossRow<Team, D, kDense>(team, in);
  return ElementwiseLossRow<Team, D, kDense>(team, in);
}

}  // namespace jumpflow::kernels::detail

#endif  // JUMPFLOW_KERNELS_DETAIL_LOSS_ROW_H_
