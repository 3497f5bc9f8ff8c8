// agent/local_provider.h: the `local` provider — the embedded engine driven turn by turn through
// one kept engine::Session. Public (beyond make_local_provider) so tests and benchmarks can see the
// session and the per-turn counters.
//
// Decision the code can't show: the session is fed exactly as train/trajgen.cpp's
// training_sequence() lays a conversation out (render of the prompt with the generation prompt, the
// reply as sampled, then render_append(GeneratedReply) of what follows, whose leading
// <end_of_sentence> the session already holds when the model stopped on it), so the tokens the
// model sees at inference are the tokens it was trained on, with no re-prefill of earlier turns.
// The provider keeps a copy of the messages its session represents; a conversation that does not
// extend that copy (compaction, a caller that edited history) gets a fresh session and a full
// prefill instead of a silently wrong state.
//
// Across processes (`m1 resume`): given a state path, every completed turn saves the session
// (PATH, engine/session.h's format) and then a JSON sidecar (PATH.json: held messages, tools, the
// <end_of_sentence> flag, the turn counter, and the count and FNV-1a of the session's token ids),
// each written to a temporary file and renamed over the old one. After on_resume() the first
// complete() loads both; only when they agree with each other, with this model and template, and
// the resumed conversation extends the held messages does it append just the new messages.
// Otherwise (missing, corrupt, another model, a kill between the two renames, another history)
// it prefills the whole conversation and says why in ModelTurn::note.
#pragma once
#include <filesystem>
#include <memory>
#include <vector>

#include "agent/edit_constraint.h"
#include "agent/provider.h"
#include "engine/engine.h"
#include "engine/sampler.h"

namespace m1::agent {

// What the last complete() did, for tests, benchmarks and the report of a run.
struct LocalTurnStats {
  bool full_prefill = false;         // true: the session was (re)started from the whole conversation
  bool restored = false;             // the session came from the saved state file (on resume)
  size_t appended_tokens = 0;        // tokens prefilled this call
  size_t sampled_tokens = 0;         // tokens generated (the stopping <end_of_sentence> included)
  bool stopped_on_eos = false;
  double prefill_seconds = 0;
  double decode_seconds = 0;
  double save_seconds = 0;           // writing the state file (0 without a state path)
  size_t constrained_tokens = 0;     // tokens whose choice the edit constraint narrowed
  nlohmann::json to_json() const;
};

class LocalProvider : public Provider {
 public:
  // Opens the model folder (weights + tokenizer) on the CPU; errors name the folder.
  static Result<std::unique_ptr<LocalProvider>> open(const ProviderOptions& o);

  std::string label() const override { return "local:" + o_.model; }
  Result<ModelTurn> complete(const std::vector<ChatMessage>& conversation,
                             const std::vector<engine::ToolDef>& tools,
                             const std::atomic<bool>* cancel, const StreamSink& sink) override;
  size_t count_tokens(const std::string& text) const override;
  void on_rewrite() override { drop_session(); }
  // Drops the session; the next complete() tries the state file first.
  void on_resume(int turns_done) override;
  void set_state_path(const std::filesystem::path& path) override { state_path_ = path; }
  void discard_state() override;

  const engine::Session* session() const { return session_.get(); }
  engine::Engine& engine() { return *engine_; }
  const engine::Tokenizer& tokenizer() const { return engine_->tokenizer(); }
  const LocalTurnStats& last_stats() const { return stats_; }
  int32_t eos_id() const { return eos_; }

 private:
  LocalProvider(ProviderOptions o, std::unique_ptr<engine::Engine> e, engine::TemplateVariant v,
                int32_t eos);
  void drop_session();
  // True when `conv` extends the messages the session holds (same tools, same earlier messages).
  bool extends_held(const std::vector<ChatMessage>& conv, const std::vector<engine::ToolDef>& tools) const;
  Status prefill(const std::vector<int32_t>& ids, const std::atomic<bool>* cancel);
  Result<ModelTurn> generate(const std::atomic<bool>* cancel, const StreamSink& sink);
  // The sampler's mask for the next token: the engine's, narrowed by the edit constraint while the
  // model writes a str_replace old_str (turn_text: this turn's output so far).
  void narrow_mask(std::string_view turn_text);
  // The state file: save after a completed turn; load (into session_/held_*) on resume.
  Status save_state() const;
  Status load_state();
  Status load_state_checked();
  // Loads the state file for `conv`; returns the note for the user.
  std::string restore(const std::vector<ChatMessage>& conv, const std::vector<engine::ToolDef>& tools);

  ProviderOptions o_;
  std::unique_ptr<engine::Engine> engine_;
  engine::ChatFormat fmt_;
  int32_t eos_;
  engine::Sampler sampler_;
  std::unique_ptr<EditConstraint> edit_constraint_;  // null: M1_CONSTRAIN_EDITS=0
  bool mask_narrowed_ = false;
  size_t constrained_tokens_ = 0;         // tokens sampled under the constraint (this turn)
  std::unique_ptr<engine::Session> session_;
  std::vector<ChatMessage> held_;         // messages in the session; the last is our reply
  std::vector<engine::ToolDef> held_tools_;
  bool held_ends_with_eos_ = false;       // the reply stopped on <end_of_sentence> (sampled, held)
  int turn_no_ = 0;                       // for call ids
  LocalTurnStats stats_;
  std::filesystem::path state_path_;      // empty: nothing is saved
  bool restore_pending_ = false;          // on_resume() was called; the next complete() loads
};

}  // namespace m1::agent
