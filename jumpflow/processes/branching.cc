// @brief Branching Flows (discrete tokens) training batches.
//
// Construction choices, against MurrellGroup/BranchingFlows.jl (src/
// coalescent_flow.jl: uniform_del_insertions, sample_forest,
// next_split_time, sample_split_times!, tree_bridge; src/merging.jl:
// SequentialUniform; src/states.jl: canonical_anchor_merge) and the paper
// (Nordlinder et al. 2025, arXiv 2511.09465):
//
// 1. Deletions. Each x_1 element independently (probability
//    deletion_probability) gets a duplicate with the same token; one of the
//    two adjacent copies, chosen with probability 1/2, is flagged del. This is
//    uniform_del_insertions. The Poisson `deletion_pad` variant is not
//    offered. The del leaf's anchor is its token (kCopy) or kMask (the
//    X1_modifier masking trick) per BranchingDeletedAnchor.
// 2. Merges. One group per sequence, every element branchable. Julia draws
//    K ~ Binomial(#adjacent pairs, coalescence_factor) and merges K times a
//    uniformly chosen adjacent pair of current nodes (SequentialUniform).
//    Merging the pair across a boundary removes that boundary and leaves the
//    others adjacent, so the sequence of merged boundaries is a uniformly
//    random ordered K-subset of the L - 1 leaf boundaries. We draw that
//    directly: boundary k gets key u_k ~ U(0, 1), is merged iff
//    u_k < coalescence_factor (a Binomial count, uniform subset), and merged
//    boundaries merge in increasing key order (uniform order). The trees are
//    then the max-key Cartesian trees of the runs of merged boundaries
//    (O(L) with a stack, instead of Julia's O(L^2) list deletions). The
//    group_mins / length_mins controls are not offered.
// 3. Anchors. Leaves: their token. Merged nodes: kMask
//    (canonical_anchor_merge; Julia's select_anchor_merge also resolves to
//    the mask token for discrete states) or, with kSelect, the anchor of the
//    left child with probability W_left / W else of the right child (the
//    DESIGN.md alternative), drawn bottom-up.
// 4. Split times. Top-down from each root (birth 0), a node of weight W >= 2
//    born at t0 splits at t = F^-1(1 - (1 - F(t0)) exp(-E / (W - 1))),
//    E ~ Exp(1) (next_split_time), computed in survival form
//    t = S_F^-1(S_F(t0) exp(-E / (W - 1))) and clamped into [t0, 1]; both
//    children are born at t. F is split_scheduler.
// 5. The cut at t (tree_bridge). A node is on the cut when t lies in
//    [birth, split): internal nodes with split <= t pass to their children
//    (as in Julia, `node.time > t` keeps the node); leaves live until t = 1
//    inclusive (Julia gives leaves time 1, which drops them at exactly t = 1;
//    we keep them so that the state at t = 1 is x_1).
// 6. Deletions on the cut. A del-flagged leaf on the cut is already deleted
//    with probability 1 - S_D(t) / S_D(birth) (exact survival ratio, as
//    tree_bridge), and deleted with probability 1 when S_D(birth) = 0.
//    Internal nodes are never deleted.
// 7. Token bridging. Roots start as kMask (the demo's X0sampler) or a
//    uniform user token. Along each segment [t_a, t_b] the state x jumps to
//    the node's anchor a with probability 1 - S(t_b) / S(t_a) if x != a (the
//    mixture-path bridge of Flowfusion's interpolating discrete flow with
//    kappa = the main scheduler), else stays; at a split both children
//    inherit the state. With mask roots and mask merges every element is
//    kMask until its leaf segment, where it unmasks with probability
//    (kappa(t) - kappa(birth)) / (1 - kappa(birth)).
// 8. Targets. split = W - 1 (Julia splits_target = descendants - 1),
//    del = del flag of a leaf (0 for internal nodes), token = one-hot anchor
//    where x_t != anchor (DFM-style multiplier).
// 9. Julia's use_branching_time_prob (evaluating at a split time) and maxlen
//    resampling are not offered; pass explicit times to train at chosen t.
#include "jumpflow/processes/branching.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "jumpflow/processes/detail/batch_builder.h"
#include "jumpflow/processes/detail/checks.h"
#include "jumpflow/status_macros.h"

namespace jumpflow {
namespace {

struct BranchingScratch {
  BranchingTree tree;
  std::vector<double> key;               // per boundary
  std::vector<int32_t> stack;            // Cartesian-tree construction / DFS
  std::vector<std::pair<int32_t, Token>> path_stack;
};

// Builds the max-key Cartesian tree over boundaries [a, b] (leaves a .. b+1)
// and returns its root id. Child ids only; ranges come later, top-down.
int32_t BuildCartesian(int32_t a, int32_t b, int32_t num_leaves, const std::vector<double>& key,
                       BranchingTree& tree, std::vector<int32_t>& stack) {
  stack.clear();
  for (int32_t k = a; k <= b; ++k) {
    const int32_t id = num_leaves + k;
    int32_t last = -1;
    while (!stack.empty() && key[stack.back()] < key[k]) {
      last = stack.back();
      stack.pop_back();
    }
    tree.left[id] = last >= 0 ? num_leaves + last : k;  // no boundary child: leaf k
    tree.right[id] = k + 1;                             // leaf k+1 until a boundary attaches
    if (!stack.empty()) tree.right[num_leaves + stack.back()] = id;
    stack.push_back(k);
  }
  return num_leaves + stack.front();
}

// Builds the forest of one sequence into `s.tree` (no cut yet).
void BuildForest(std::span<const Token> x1, const BranchingOptions& options,
                 const Scheduler& split_sched, PhiloxStream& rng, PhiloxStream& root_rng,
                 BranchingScratch& s) {
  BranchingTree& tree = s.tree;
  // 1. Leaves with to-be-deleted duplicates.
  tree.leaf_tokens.clear();
  tree.leaf_deleted.clear();
  const double p_del = options.deletion_probability;
  for (const Token y : x1) {
    if (p_del > 0.0 && detail::Uniform32(rng) < p_del) {
      const Token dup = options.deleted_anchor == BranchingDeletedAnchor::kMask ? Vocabulary::kMask
                                                                                  : y;
      const bool first_deleted = detail::Uniform32(rng) < 0.5;
      tree.leaf_tokens.push_back(first_deleted ? dup : y);
      tree.leaf_deleted.push_back(first_deleted ? 1 : 0);
      tree.leaf_tokens.push_back(first_deleted ? y : dup);
      tree.leaf_deleted.push_back(first_deleted ? 0 : 1);
    } else {
      tree.leaf_tokens.push_back(y);
      tree.leaf_deleted.push_back(0);
    }
  }
  const int32_t num_leaves = static_cast<int32_t>(tree.leaf_tokens.size());
  const size_t num_nodes = 2 * static_cast<size_t>(num_leaves) - 1;
  tree.left.assign(num_nodes, -1);
  tree.right.assign(num_nodes, -1);
  tree.lo.assign(num_nodes, -1);
  tree.hi.assign(num_nodes, -1);
  tree.birth.assign(num_nodes, 0.0);
  tree.split_time.assign(num_nodes, std::numeric_limits<double>::infinity());
  tree.anchor.assign(num_nodes, Vocabulary::kMask);
  for (int32_t i = 0; i < num_leaves; ++i) tree.anchor[i] = tree.leaf_tokens[i];

  // 2. Merge keys and Cartesian trees of the merged runs; roots in order.
  s.key.resize(static_cast<size_t>(std::max(0, num_leaves - 1)));
  const double c = options.coalescence_factor;
  for (double& k : s.key) k = rng.Uniform();
  auto merged = [&](int32_t k) { return s.key[k] < c; };
  tree.roots.clear();
  for (int32_t i = 0; i < num_leaves;) {
    if (i < num_leaves - 1 && merged(i)) {
      int32_t b = i;
      while (b + 1 < num_leaves - 1 && merged(b + 1)) ++b;
      const int32_t root = BuildCartesian(i, b, num_leaves, s.key, tree, s.stack);
      tree.lo[root] = i;
      tree.hi[root] = b + 2;
      tree.roots.push_back(root);
      i = b + 2;
    } else {
      tree.lo[i] = i;
      tree.hi[i] = i + 1;
      tree.roots.push_back(i);
      ++i;
    }
  }
  tree.root_tokens.clear();
  const uint32_t num_user = static_cast<uint32_t>(
      std::max<int32_t>(1, options.vocab_size - Vocabulary::kNumSpecials));
  for (size_t r = 0; r < tree.roots.size(); ++r) {
    tree.root_tokens.push_back(options.root == BranchingRoot::kUniform
                                   ? Vocabulary::kNumSpecials +
                                         static_cast<Token>(root_rng.UniformInt(num_user))
                                   : Vocabulary::kMask);
  }

  // 4. Leaf ranges and split times, top-down (preorder, left subtree first).
  tree.preorder.clear();
  for (const int32_t root : tree.roots) {
    if (root < num_leaves) continue;
    s.stack.clear();
    s.stack.push_back(root);
    while (!s.stack.empty()) {
      const int32_t v = s.stack.back();
      s.stack.pop_back();
      tree.preorder.push_back(v);
      const int32_t k = v - num_leaves;  // boundary between leaves k and k+1
      const int32_t weight = tree.hi[v] - tree.lo[v];
      const double t0 = tree.birth[v];
      const double s0 = split_sched.Survival(t0);
      const double e = rng.Exponential();
      double split = 1.0;
      if (s0 > 0.0) split = split_sched.InverseSurvival(s0 * std::exp(-e / (weight - 1)));
      split = std::clamp(split, t0, 1.0);
      tree.split_time[v] = split;
      const int32_t l = tree.left[v], r = tree.right[v];
      tree.lo[l] = tree.lo[v];
      tree.hi[l] = k + 1;
      tree.lo[r] = k + 1;
      tree.hi[r] = tree.hi[v];
      tree.birth[l] = split;
      tree.birth[r] = split;
      if (r >= num_leaves) s.stack.push_back(r);
      if (l >= num_leaves) s.stack.push_back(l);
    }
  }
  // 3. Selected anchors, bottom-up (reverse preorder: children first).
  if (options.merge == BranchingMerge::kSelect) {
    for (auto it = tree.preorder.rbegin(); it != tree.preorder.rend(); ++it) {
      const int32_t v = *it;
      const int32_t l = tree.left[v], r = tree.right[v];
      const double w_l = tree.hi[l] - tree.lo[l];
      const double w = tree.hi[v] - tree.lo[v];
      tree.anchor[v] = detail::Uniform32(rng) < w_l / w ? tree.anchor[l] : tree.anchor[r];
    }
  }
}

// Moves `x` toward `anchor` over a segment with token survivals s0 -> s1.
Token Bridge(Token x, Token anchor, double s0, double s1, PhiloxStream& rng) {
  if (x == anchor) return x;
  const double jump = s0 > 0.0 ? 1.0 - s1 / s0 : 1.0;
  return detail::Uniform32(rng) < jump ? anchor : x;
}

}  // namespace

absl::StatusOr<TrainingBatch> MakeBranchingBatch(const SequenceBatch& x1, const BatchTimes& times,
                                                 const Scheduler& scheduler,
                                                 const BranchingOptions& options, uint64_t seed,
                                                 const BatchWeights& weights,
                                                 BranchingTrace* trace) {
  JUMPFLOW_RETURN_IF_ERROR(detail::CheckVocabSize(options.vocab_size, 0, "for Branching Flows"));
  JUMPFLOW_RETURN_IF_ERROR(
      detail::CheckTokens(x1, "x1", options.vocab_size, /*allow_mask=*/false));
  const int64_t num_sequences = x1.num_sequences();
  for (int64_t b = 0; b < num_sequences; ++b) {
    if (x1.length(b) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "x1 sequence ", b, " is empty; Branching Flows need at least one element per sequence"));
    }
    if (x1.length(b) >= (int64_t{1} << 29)) {
      return absl::InvalidArgumentError(
          absl::StrCat("x1 sequence ", b, " has ", x1.length(b), " tokens; at most 2^29 - 1"));
    }
  }
  if (!(options.deletion_probability >= 0.0 && options.deletion_probability <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "deletion_probability is ", options.deletion_probability, ", outside [0, 1]"));
  }
  if (!(options.coalescence_factor >= 0.0 && options.coalescence_factor <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "coalescence_factor is ", options.coalescence_factor, ", outside [0, 1]"));
  }
  if (options.merge != BranchingMerge::kMask && options.merge != BranchingMerge::kSelect) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown BranchingMerge ", static_cast<int>(options.merge)));
  }
  if (options.deleted_anchor != BranchingDeletedAnchor::kCopy &&
      options.deleted_anchor != BranchingDeletedAnchor::kMask) {
    return absl::InvalidArgumentError(absl::StrCat("unknown BranchingDeletedAnchor ",
                                                   static_cast<int>(options.deleted_anchor)));
  }
  if (options.root == BranchingRoot::kUniform) {
    JUMPFLOW_RETURN_IF_ERROR(detail::CheckVocabSize(options.vocab_size, Vocabulary::kNumSpecials,
                                                    "for uniform roots (no user tokens)"));
  } else if (options.root != BranchingRoot::kMask) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown BranchingRoot ", static_cast<int>(options.root)));
  }
  JUMPFLOW_ASSIGN_OR_RETURN(std::vector<double> t, times.Resolve(num_sequences, seed));
  JUMPFLOW_ASSIGN_OR_RETURN(std::vector<float> w, weights.Resolve(t));
  const Scheduler& split_sched = options.split_scheduler ? *options.split_scheduler : scheduler;
  const Scheduler& del_sched = options.deletion_scheduler ? *options.deletion_scheduler : scheduler;
  if (trace != nullptr) trace->trees.assign(static_cast<size_t>(num_sequences), BranchingTree{});

  auto emit = [&](int64_t b, detail::ChunkArena& out, BranchingScratch& s) -> absl::Status {
    const uint32_t stream = static_cast<uint32_t>(b);
    PhiloxStream forest_rng(seed, stream, kPurposeSplit);
    PhiloxStream root_rng(seed, stream, kPurposeSource);
    PhiloxStream path_rng(seed, stream, kPurposePath);
    BuildForest(x1.sequence(b), options, split_sched, forest_rng, root_rng, s);
    BranchingTree& tree = s.tree;
    const int32_t num_leaves = static_cast<int32_t>(tree.leaf_tokens.size());
    const double tb = t[b];
    const double s_tok_t = scheduler.Survival(tb);
    const double s_del_t = del_sched.Survival(tb);
    tree.alive.clear();
    tree.removed.clear();
    // Depth-first over the forest, left to right; (node, state at birth).
    auto& stack = s.path_stack;
    for (size_t r = 0; r < tree.roots.size(); ++r) {
      stack.clear();
      stack.emplace_back(tree.roots[r], tree.root_tokens[r]);
      while (!stack.empty()) {
        const auto [v, x_birth] = stack.back();
        stack.pop_back();
        const double s_birth = scheduler.Survival(tree.birth[v]);
        if (v >= num_leaves && tree.split_time[v] <= tb) {
          const Token x = Bridge(x_birth, tree.anchor[v], s_birth,
                                 scheduler.Survival(tree.split_time[v]), path_rng);
          stack.emplace_back(tree.right[v], x);
          stack.emplace_back(tree.left[v], x);
          continue;
        }
        const bool del = v < num_leaves && tree.leaf_deleted[v] != 0;
        if (del) {
          const double s_del_birth = del_sched.Survival(tree.birth[v]);
          const double survive = s_del_birth > 0.0 ? s_del_t / s_del_birth : 0.0;
          if (detail::Uniform32(path_rng) >= survive) {
            tree.removed.push_back(v);
            continue;
          }
        }
        const Token x = Bridge(x_birth, tree.anchor[v], s_birth, s_tok_t, path_rng);
        tree.alive.push_back(v);
        out.BeginTokenRow(x, del ? 1.0f : 0.0f,
                          static_cast<float>(tree.hi[v] - tree.lo[v] - 1));
        if (x != tree.anchor[v]) out.AddTokenEntry(tree.anchor[v], 1.0f);
      }
    }
    if (trace != nullptr) trace->trees[b] = tree;
    return absl::OkStatus();
  };

  JUMPFLOW_ASSIGN_OR_RETURN(
      TrainingBatch tb,
      detail::BuildBatch<BranchingScratch>(
          num_sequences, {.token = true, .del = true, .split = true, .insert = false}, emit));
  tb.process = ProcessKind::kBranching;
  for (int64_t b = 0; b < num_sequences; ++b) tb.x_t.set_time(b, t[b]);
  tb.weights = std::move(w);
  return tb;
}

}  // namespace jumpflow
