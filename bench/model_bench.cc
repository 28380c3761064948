// @brief Reference transformer throughput: forward+backward training tokens/s
// and forward-only sequences/s on English words (len <= 12, batch 64), for 1
// and 2 threads, with a memory-copy reference of the activation bytes.
//
// Words come from /usr/share/dict/words (lower-case a-z, length 1..12) when
// present, otherwise from a fixed synthetic set with the same length range.
// Models: dim 64 or 128, 2 or 4 layers, 4 heads, MLP ratio 4, Edit Flows
// heads (the demo's process).
#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "jumpflow/model/optimizer.h"
#include "jumpflow/model/transformer.h"
#include "kernels/philox.h"
#include "oneapi/tbb/global_control.h"
#include "sequences/sequence_batch.h"
#include "sequences/vocabulary.h"

namespace jumpflow {
namespace {

constexpr int kBatch = 64;

const std::vector<std::vector<Token>>& Words() {
  static const std::vector<std::vector<Token>> words = [] {
    std::vector<std::vector<Token>> out;
    std::ifstream in("/usr/share/dict/words");
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line.size() > 12) continue;
      if (!std::all_of(line.begin(), line.end(), [](char c) { return c >= 'a' && c <= 'z'; })) {
        continue;
      }
      std::vector<Token> w;
      for (char c : line) w.push_back(Vocabulary::kNumSpecials + (c - 'a'));
      out.push_back(std::move(w));
    }
    if (out.size() < 1000) {  // synthetic fallback
      PhiloxStream rng(1, 0, kPurposeUser);
      out.clear();
      for (int i = 0; i < 5000; ++i) {
        std::vector<Token> w(1 + rng.UniformInt(12));
        for (Token& t : w) t = Vocabulary::kNumSpecials + static_cast<Token>(rng.UniformInt(26));
        out.push_back(std::move(w));
      }
    }
    return out;
  }();
  return words;
}

SequenceBatch WordBatch(uint64_t seed) {
  const auto& words = Words();
  PhiloxStream rng(seed, 0, kPurposeUser);
  std::vector<std::vector<Token>> seqs;
  std::vector<double> times;
  for (int b = 0; b < kBatch; ++b) {
    seqs.push_back(words[rng.UniformInt(static_cast<uint32_t>(words.size()))]);
    times.push_back(rng.Uniform());
  }
  return *SequenceBatch::FromVectors(seqs, Vocabulary::kNumSpecials + 26, times);
}

Transformer MakeModel(int dim, int layers) {
  TransformerConfig c;
  c.vocab_size = Vocabulary::kNumSpecials + 26;
  c.dim = dim;
  c.layers = layers;
  c.heads = 4;
  c.mlp_ratio = 4;
  c.max_length = 12;
  c.time_features = 32;
  c.process = ProcessKind::kEdit;
  return *Transformer::Create(c, 1);
}

// Args: threads, dim, layers. One iteration = forward + backward + AdamW
// step on a batch of 64 words.
void BM_TransformerTrainStep_Cpu(benchmark::State& state) {
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism,
                              static_cast<size_t>(state.range(0)));
  Transformer model = MakeModel(static_cast<int>(state.range(1)), static_cast<int>(state.range(2)));
  AdamW adam = *AdamW::Create(AdamWOptions(), model.NumParameters(), model.ParameterGroups());
  std::vector<SequenceBatch> batches;
  for (int i = 0; i < 8; ++i) batches.push_back(WordBatch(i));
  Transformer::Workspace ws;
  Transformer::Outputs out;
  std::vector<float> grad(model.NumParameters());
  std::vector<float> d_tok, d_gap;
  int64_t tokens = 0, i = 0;
  for (auto _ : state) {
    const SequenceBatch& batch = batches[i++ % batches.size()];
    if (!model.Forward(batch, &ws, &out).ok()) state.SkipWithError("forward failed");
    // A stand-in loss gradient: small, dense (the real losses are dense too).
    d_tok.assign(out.token_out.size(), 1e-3f);
    d_gap.assign(out.gap_out.size(), 1e-3f);
    std::fill(grad.begin(), grad.end(), 0.0f);
    if (!model.Backward(d_tok, d_gap, &ws, grad).ok()) state.SkipWithError("backward failed");
    if (!adam.Step(model.mutable_parameters(), grad).ok()) state.SkipWithError("step failed");
    tokens += batch.num_tokens();
  }
  state.SetItemsProcessed(tokens);
  state.counters["params"] = static_cast<double>(model.NumParameters());
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TransformerTrainStep_Cpu)
    ->ArgNames({"threads", "dim", "layers"})
    ->Args({1, 64, 2})
    ->Args({2, 64, 2})
    ->Args({1, 128, 4})
    ->Args({2, 128, 4})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Forward only (sampling): sequences per second.
void BM_TransformerForward_Cpu(benchmark::State& state) {
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism,
                              static_cast<size_t>(state.range(0)));
  Transformer model = MakeModel(static_cast<int>(state.range(1)), static_cast<int>(state.range(2)));
  std::vector<SequenceBatch> batches;
  for (int i = 0; i < 8; ++i) batches.push_back(WordBatch(100 + i));
  Transformer::Workspace ws;
  Transformer::Outputs out;
  int64_t seqs = 0, i = 0;
  for (auto _ : state) {
    const SequenceBatch& batch = batches[i++ % batches.size()];
    if (!model.Forward(batch, &ws, &out).ok()) state.SkipWithError("forward failed");
    benchmark::DoNotOptimize(out.token_out.data());
    seqs += batch.num_sequences();
  }
  state.SetItemsProcessed(seqs);
  state.counters["seqs/s"] =
      benchmark::Counter(static_cast<double>(seqs), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TransformerForward_Cpu)
    ->ArgNames({"threads", "dim", "layers"})
    ->Args({1, 64, 2})
    ->Args({2, 64, 2})
    ->Args({1, 128, 4})
    ->Args({2, 128, 4})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// AdamW update alone on the parameters of the dim-64 (111 k) and dim-128
// (816 k) models, 1 thread. Bytes = what the update moves per parameter:
// parameter, gradient, two moments and the decay flag read (17 B), parameter
// and moments written (12 B); BM_AdamWCopyReference_Cpu copies the same
// bytes (memcpy) in this binary.
constexpr int64_t kAdamBytesPerParam = 29;

// TimeMemcpy times a memcpy of `bytes` per iteration (the roofline
// references of this file).
void TimeMemcpy(benchmark::State& state, size_t bytes) {
  std::vector<char> src(bytes, 1), dst(bytes);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(bytes));
}

void BM_AdamWStep_Cpu(benchmark::State& state) {
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism, 1);
  Transformer model = MakeModel(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  AdamW adam = *AdamW::Create(AdamWOptions(), model.NumParameters(), model.ParameterGroups());
  std::vector<float> grad(model.NumParameters());
  PhiloxStream rng(3, 0, kPurposeUser);
  for (float& g : grad) g = static_cast<float>(rng.Uniform() - 0.5) * 1e-2f;
  for (auto _ : state) {
    if (!adam.Step(model.mutable_parameters(), grad).ok()) state.SkipWithError("step failed");
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * model.NumParameters() *
                          kAdamBytesPerParam);
  state.counters["params"] = static_cast<double>(model.NumParameters());
}

// Args: dim, layers (the two models above).
void AdamShapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"dim", "layers"})->Args({64, 2})->Args({128, 4});
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}
BENCHMARK(BM_AdamWStep_Cpu)->Apply(AdamShapes);

void BM_AdamWCopyReference_Cpu(benchmark::State& state) {
  const Transformer model =
      MakeModel(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  const size_t bytes = static_cast<size_t>(model.NumParameters() * kAdamBytesPerParam);
  TimeMemcpy(state, bytes);
}
BENCHMARK(BM_AdamWCopyReference_Cpu)->Apply(AdamShapes);

// Roofline reference: copying the bytes of one batch's saved activations
// (dim 64, 2 layers: about (7 dim + 8 dim) floats per wrapped row per layer).
void BM_MemcpyReference(benchmark::State& state) {
  const int64_t rows = kBatch * 10;  // ~8 letters + BOS + EOS
  const size_t bytes = static_cast<size_t>(rows * (15 * 64) * 2 * sizeof(float));
  TimeMemcpy(state, bytes);
}
BENCHMARK(BM_MemcpyReference)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace jumpflow

BENCHMARK_MAIN();
