// @brief Branching Flows (discrete tokens) training batches: splits,
// deletions and token bridging along a sampled forest.
//
// DESIGN.md section 1 "Branching Flows", following the public
// MurrellGroup/BranchingFlows.jl (sample_forest / tree_bridge /
// branching_bridge). Per sequence: the leaves are x_1 with to-be-deleted
// duplicates inserted; random adjacent pairs are merged into binary trees
// (a node's weight W = its number of leaves); split times are drawn top-down
// (a node of weight W born at t0 splits at the first event of hazard
// (W - 1) h_F(t)); the elements alive at t are the nodes whose lifetime
// [birth, split) contains t, in order, each carrying a token bridged from its
// root's state toward the anchors along its path; a del-flagged leaf is
// already gone with probability 1 - S_D(t) / S_D(birth). Every construction
// choice is written down at the top of branching.cc.
//
// Targets per alive element (token row of x_t): split_targets = W - 1
// (pending splits), delete_targets = 1 for a del-flagged leaf else 0,
// token_targets = one entry (anchor, 1) where x_t != anchor. Multipliers only;
// rates are h(t) * m with the hazard of the matching scheduler.
//
// Random draws of sequence b: PhiloxStream(seed, b, kPurposeSplit) builds the
// forest (duplicates, merges, split times, selected anchors), so the forest
// does not depend on t; PhiloxStream(seed, b, kPurposePath) draws the state
// at t; PhiloxStream(seed, b, kPurposeSource) the root tokens of a uniform
// root source. Same inputs + seed -> same batch for any thread count.
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(auto linear, MakeScheduler("linear"));
//   BranchingOptions opt;
//   opt.vocab_size = vocab.size();
//   opt.deletion_probability = 0.2;
//   JUMPFLOW_ASSIGN_OR_RETURN(TrainingBatch tb,
//       MakeBranchingBatch(x1, BatchTimes::Sampled(*uniform), *linear, opt, /*seed=*/step));
#ifndef JUMPFLOW_PROCESSES_BRANCHING_H_
#define JUMPFLOW_PROCESSES_BRANCHING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "jumpflow/processes/process_common.h"
#include "jumpflow/scheduler.h"
#include "jumpflow/training_batch.h"
#include "sequences/sequence_batch.h"

namespace jumpflow {

// BranchingMerge picks the anchor token of a merged (internal) node.
enum class BranchingMerge : uint8_t {
  kMask = 0,    // Vocabulary::kMask (BranchingFlows.jl canonical_anchor_merge)
  kSelect = 1,  // the anchor of a child chosen with probability W_child / W
};

// BranchingRoot picks the token of each root at t = 0.
enum class BranchingRoot : uint8_t {
  kMask = 0,     // Vocabulary::kMask (the Julia demo's X0sampler)
  kUniform = 1,  // uniform over the user tokens [kNumSpecials, vocab_size)
};

// BranchingDeletedAnchor picks the anchor token of a to-be-deleted leaf.
enum class BranchingDeletedAnchor : uint8_t {
  kCopy = 0,  // the token of the element it duplicates (Julia default)
  kMask = 1,  // Vocabulary::kMask (Julia's X1_modifier masking trick)
};

// BranchingOptions configure MakeBranchingBatch.
struct BranchingOptions {
  // Vocabulary size (specials included). Required.
  int32_t vocab_size = 0;
  // Each x_1 element independently gets a to-be-deleted duplicate next to it
  // with this probability (BranchingFlows.jl uniform_del_insertions), in [0, 1].
  double deletion_probability = 0.0;
  // Each adjacent leaf pair boundary is merged independently with this
  // probability, in [0, 1] (the Julia Binomial(max merges, factor) count of
  // uniformly chosen merges); 1 gives one root per sequence, 0 no merges.
  double coalescence_factor = 1.0;
  BranchingMerge merge = BranchingMerge::kMask;
  BranchingRoot root = BranchingRoot::kMask;
  BranchingDeletedAnchor deleted_anchor = BranchingDeletedAnchor::kCopy;
  // Scheduler F of the split times (Julia branch_time_dist) and S_D = 1 -
  // kappa_D of the deletions (Julia deletion_time_dist); nullptr means the
  // main scheduler, which always drives the token bridges.
  const Scheduler* split_scheduler = nullptr;
  const Scheduler* deletion_scheduler = nullptr;
};

// BranchingTree is the forest and the cut at t of one sequence. Node ids:
// leaves are 0 .. L-1 (L = leaf_tokens.size()); the internal node made by
// merging across the boundary between leaves k and k+1 is L + k (only for
// merged boundaries; other ids in [L, 2L-1) are unused, with lo = -1).
struct BranchingTree {
  std::vector<Token> leaf_tokens;       // x_1 with to-be-deleted duplicates
  std::vector<uint8_t> leaf_deleted;    // 1 for to-be-deleted leaves
  std::vector<int32_t> left, right;     // children of internal nodes, -1 for leaves
  std::vector<int32_t> lo, hi;          // leaf range [lo, hi) of each node
  std::vector<double> birth;            // birth time (parent's split, 0 for roots)
  std::vector<double> split_time;       // split time; +inf for leaves
  std::vector<Token> anchor;            // anchor token of each node
  std::vector<int32_t> roots;           // root ids in sequence order
  std::vector<Token> root_tokens;       // token of each root at t = 0
  std::vector<int32_t> alive;           // node of each x_t element, in order
  std::vector<int32_t> removed;         // del leaves on the cut already deleted
  std::vector<int32_t> preorder;        // internal nodes, parents first
};

// BranchingTrace holds one BranchingTree per sequence (tests, debugging).
struct BranchingTrace {
  std::vector<BranchingTree> trees;
};

// MakeBranchingBatch samples a forest and the state at t for every sequence
// of `x1` and returns a TrainingBatch with process kBranching, x_t (times
// set), weights, token_targets, delete_targets and split_targets. x1's own
// times are ignored. Errors (InvalidArgument naming the sequence / value):
// vocab_size too small (kUniform roots need user tokens), an empty x_1
// sequence (every tree needs a leaf), x_1 tokens outside the vocabulary or
// equal to kMask / kEps, probabilities outside [0, 1], bad times or weights.
absl::StatusOr<TrainingBatch> MakeBranchingBatch(const SequenceBatch& x1, const BatchTimes& times,
                                                 const Scheduler& scheduler,
                                                 const BranchingOptions& options, uint64_t seed,
                                                 const BatchWeights& weights = BatchWeights::Ones(),
                                                 BranchingTrace* trace = nullptr);

}  // namespace jumpflow

#endif  // JUMPFLOW_PROCESSES_BRANCHING_H_
