// agent/local_state.cpp: the local provider's state file, so `m1 resume` continues the engine
// session instead of prefilling the whole transcript again (layout in local_provider.h).
// Decision: two files, each replaced atomically (temporary file, fsync, rename), the session first
// and the sidecar second. A kill between the two renames leaves a new session beside an old
// sidecar; the sidecar's token count and FNV-1a of the token ids catch that, so the pair is used
// only when both describe the same tokens. Nothing here ever continues from a state it cannot
// prove matches the conversation: every doubt is a full prefill with the reason in the note.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "agent/local_provider.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace m1::agent {

namespace {

constexpr const char* kFormat = "m1-local-provider-state";
constexpr int kVersion = 1;

std::string fnv_hex(const std::vector<int32_t>& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  const auto* p = reinterpret_cast<const unsigned char*>(ids.data());
  for (size_t i = 0; i < ids.size() * sizeof(int32_t); ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

fs::path sidecar_of(const fs::path& p) { return fs::path(p.string() + ".json"); }

// Temporary file beside `path`, fsync, rename over it: a reader sees the old or the new file whole.
Status write_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("cannot write '" + tmp.string() + "': " + std::strerror(errno));
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return make_error("writing '" + tmp.string() + "' failed: " + why);
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return make_error("cannot move '" + tmp.string() + "' to '" + path.string() + "': " + why);
  }
  return {};
}

}  // namespace

Status LocalProvider::save_state() const {
  std::error_code ec;
  fs::create_directories(state_path_.parent_path(), ec);
  if (ec) return make_error("cannot create '" + state_path_.parent_path().string() + "': " + ec.message());
  M1_TRY(session_->save(state_path_));
  json msgs = json::array(), tls = json::array();
  for (const auto& m : held_) msgs.push_back(engine::to_json(m));
  for (const auto& t : held_tools_) tls.push_back(engine::to_json(t));
  json side = {{"format", kFormat}, {"version", kVersion}, {"model", o_.model},
               {"chat_template", o_.chat_template}, {"tokens", session_->tokens().size()},
               {"tokens_fnv1a", fnv_hex(session_->tokens())}, {"ends_with_eos", held_ends_with_eos_},
               {"turn_no", turn_no_}, {"tools", tls}, {"messages", msgs}};
  return write_atomically(sidecar_of(state_path_),
                          side.dump(-1, ' ', false, json::error_handler_t::replace));
}

Status LocalProvider::load_state() {
  // A hand-edited or damaged sidecar can hold any JSON: type errors are reported, not thrown on.
  try {
    return load_state_checked();
  } catch (const json::exception& e) {
    return make_error("sidecar '" + sidecar_of(state_path_).string() + "' is corrupt: " + e.what());
  }
}

Status LocalProvider::load_state_checked() {
  std::error_code ec;
  const fs::path side_path = sidecar_of(state_path_);
  if (!fs::exists(state_path_, ec) && !fs::exists(side_path, ec))
    return make_error("there is none at '" + state_path_.string() + "'");
  std::ifstream in(side_path);
  if (!in) return make_error("its sidecar '" + side_path.string() + "' cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  json side = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  const std::string where = "sidecar '" + side_path.string() + "'";
  if (!side.is_object() || side.value("format", "") != kFormat)
    return make_error(where + " is not a local provider state file (corrupt?)");
  if (side.value("version", 0) != kVersion)
    return make_error(where + " has version " + side["version"].dump() + ", expected " + std::to_string(kVersion));
  if (side.value("chat_template", "") != o_.chat_template)
    return make_error(where + " was written with chat template '" + side.value("chat_template", "") +
                      "', this run uses '" + o_.chat_template + "'");
  if (!side.contains("tokens") || !side["tokens"].is_number_unsigned() || !side.contains("tokens_fnv1a") ||
      !side["tokens_fnv1a"].is_string() || !side.contains("ends_with_eos") || !side["ends_with_eos"].is_boolean() ||
      !side.contains("turn_no") || !side["turn_no"].is_number_integer())
    return make_error(where + " lacks tokens, tokens_fnv1a, ends_with_eos or turn_no (corrupt?)");
  auto msgs = engine::chat_messages_from_json(side.value("messages", json()));
  if (!msgs.ok()) return make_error(where + ": messages: " + msgs.error().message);
  auto tls = engine::tool_defs_from_json(side.value("tools", json()));
  if (!tls.ok()) return make_error(where + ": tools: " + tls.error().message);
  if (msgs->empty() || msgs->back().role != Role::Assistant)
    return make_error(where + " does not end with the model's reply (corrupt?)");
  auto s = engine_->load_session(state_path_);  // checks magic, checksums, sizes, model identity
  if (!s.ok()) return s.error();
  const auto& ids = (*s)->tokens();
  if (ids.size() != side["tokens"].get<uint64_t>() || fnv_hex(ids) != side["tokens_fnv1a"].get<std::string>())
    return make_error("the session file holds " + std::to_string(ids.size()) + " tokens that are not the " +
                      side["tokens"].dump() + " its " + where + " describes (interrupted between the two writes?)");
  const bool eos = side["ends_with_eos"].get<bool>();
  if (eos && (ids.empty() || ids.back() != eos_))
    return make_error(where + " says the reply ended on <end_of_sentence> but the session does not (corrupt?)");
  session_ = std::move(*s);
  held_ = std::move(*msgs);
  held_tools_ = std::move(*tls);
  held_ends_with_eos_ = eos;
  turn_no_ = std::max(turn_no_, side["turn_no"].get<int>());
  return {};
}

std::string LocalProvider::restore(const std::vector<ChatMessage>& conv, const std::vector<engine::ToolDef>& tools) {
  if (state_path_.empty())
    return "no engine state was kept for this task: the whole conversation is prefilled";
  if (auto st = load_state(); !st.ok()) {
    drop_session();
    return "saved engine state not used (" + st.error().message + "): the whole conversation is prefilled";
  }
  const size_t held_tokens = session_->tokens().size(), held_msgs = held_.size();
  if (!extends_held(conv, tools)) {
    drop_session();
    return "the saved engine state (" + std::to_string(held_msgs) + " messages, " + std::to_string(held_tokens) +
           " tokens) is not a prefix of the resumed conversation (" + std::to_string(conv.size()) +
           " messages): the whole conversation is prefilled";
  }
  stats_.restored = true;
  return "continuing the saved engine state (" + std::to_string(held_msgs) + " messages, " +
         std::to_string(held_tokens) + " tokens): only the new messages are prefilled";
}

void LocalProvider::discard_state() {
  if (state_path_.empty()) return;
  std::error_code ec;
  const std::string base = state_path_.filename().string();
  for (const auto& e : fs::directory_iterator(state_path_.parent_path(), ec)) {
    const std::string name = e.path().filename().string();
    // PATH, PATH.json and the temporary files of writes a kill interrupted (PATH[.json].tmp.PID).
    if (name == base || name.rfind(base + ".", 0) == 0) fs::remove(e.path(), ec);
  }
}

}  // namespace m1::agent
