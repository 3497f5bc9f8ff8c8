// agent/git.cpp: git commands run through tools::run_process with git_argv's safety options
// (a repository's own config must not be able to run programs from these unconfined calls).
#include "agent/git.h"

#include <unistd.h>

#include "tools/process.h"

namespace fs = std::filesystem;

namespace m1::agent {

namespace {

Result<std::string> git(const fs::path& cwd, std::initializer_list<std::string> args,
                        const std::string& what, const std::optional<std::string>& input = std::nullopt) {
  auto r = tools::run_process(tools::git_argv(args), cwd, input);
  if (!r.ok()) return r.error();
  if (r->exit_code != 0) {
    std::string msg = r->err.empty() ? r->out : r->err;
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return make_error(what + " failed: " + msg);
  }
  return r->out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool is_git_worktree(const fs::path& p) {
  auto r = tools::run_process(tools::git_argv({"rev-parse", "--show-toplevel"}), p);
  if (!r.ok() || r->exit_code != 0) return false;
  std::error_code ec;
  return fs::equivalent(fs::path(trim(r->out)), p, ec);
}

}  // namespace

Result<fs::path> materialize_repo(const fs::path& src, const fs::path& cache_dir) {
  std::error_code ec;
  if (!fs::is_directory(src, ec)) return make_error("repository '" + src.string() + "' is not a directory", 2);
  fs::path abs = fs::canonical(src, ec);
  if (is_git_worktree(abs)) return abs;
  fs::create_directories(cache_dir, ec);
  fs::path tmp = cache_dir / ("tmp-" + std::to_string(getpid()) + "-" + std::to_string(rand()));
  fs::copy(abs, tmp, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
  if (ec) return make_error("cannot copy '" + abs.string() + "' to " + tmp.string() + ": " + ec.message());
  auto cleanup = [&] { fs::remove_all(tmp, ec); };
  const std::string date = "2024-01-01T00:00:00+0000";
  for (auto step : {std::vector<std::string>{"init", "-q"}, std::vector<std::string>{"add", "-A"}}) {
    std::vector<std::string> argv = tools::git_argv({});
    argv.insert(argv.end(), step.begin(), step.end());
    auto r = tools::run_process(argv, tmp);
    if (!r.ok() || r->exit_code != 0) { cleanup(); return make_error("git " + step[0] + " in " + tmp.string() + " failed"); }
  }
  std::vector<std::string> commit = {"env", "GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date};
  auto g = tools::git_argv({"-c", "user.name=m1", "-c", "user.email=m1@example.invalid",
                            "-c", "commit.gpgsign=false", "commit", "-q", "-m", "example repository"});
  commit.insert(commit.end(), g.begin(), g.end());
  auto r = tools::run_process(commit, tmp);
  if (!r.ok() || r->exit_code != 0) {
    cleanup();
    return make_error("git commit of the copy of '" + abs.string() + "' failed: " + (r.ok() ? r->err : r.error().message));
  }
  auto head = resolve_commit(tmp, "HEAD");
  if (!head.ok()) { cleanup(); return head.error(); }
  fs::path final_dir = cache_dir / *head;
  if (fs::exists(final_dir, ec)) {  // made before (or by a parallel worker): same files, same id
    cleanup();
    return final_dir;
  }
  fs::rename(tmp, final_dir, ec);
  if (ec) {
    cleanup();
    if (fs::exists(final_dir)) return final_dir;
    return make_error("cannot move materialized repository to " + final_dir.string() + ": " + ec.message());
  }
  return final_dir;
}

Result<std::string> resolve_commit(const fs::path& repo, const std::string& rev) {
  auto out = git(repo, {"rev-parse", "--verify", "--quiet", rev + "^{commit}"},
                 "resolving '" + rev + "' in " + repo.string());
  if (!out.ok()) return make_error("'" + rev + "' is not a commit in " + repo.string(), 2);
  return trim(*out);
}

Status add_worktree(const fs::path& repo, const std::string& commit, const fs::path& dir,
                    const std::string& branch) {
  std::error_code ec;
  fs::create_directories(dir.parent_path(), ec);
  Result<std::string> r = branch.empty()
      ? git(repo, {"worktree", "add", "--detach", "-q", dir.string(), commit}, "git worktree add")
      : git(repo, {"worktree", "add", "-q", "-b", branch, dir.string(), commit}, "git worktree add");
  if (!r.ok()) return r.error();
  return {};
}

Status remove_worktree(const fs::path& repo, const fs::path& dir, const std::string& branch) {
  auto r = git(repo, {"worktree", "remove", "--force", dir.string()}, "git worktree remove");
  std::error_code ec;
  fs::remove_all(dir, ec);
  (void)git(repo, {"worktree", "prune"}, "git worktree prune");
  if (!branch.empty()) (void)git(repo, {"branch", "-D", "-q", branch}, "git branch -D");
  if (!r.ok()) return r.error();
  return {};
}

Result<std::string> diff_since(const fs::path& worktree, const std::string& base) {
  // Intent-to-add makes new files show up in the diff; the index is the worktree's own.
  M1_TRY(git(worktree, {"add", "-A", "-N"}, "git add -N"));
  return git(worktree, {"diff", "--no-ext-diff", "--no-textconv", "--no-color", "--binary", base},
             "git diff");
}

Status git_apply(const fs::path& worktree, const std::string& patch, const std::string& what) {
  if (patch.find_first_not_of(" \n\t") == std::string::npos) return {};
  auto r = git(worktree, {"apply", "--whitespace=nowarn", "-"}, "applying " + what, patch);
  if (!r.ok()) return r.error();
  return {};
}

}  // namespace m1::agent
