// agent/git.h: the git plumbing of repository tasks: isolated worktrees, patches, and turning a
// plain folder (examples/*/repo) into a git repository with a reproducible commit id.
#pragma once
#include <filesystem>
#include <string>

#include "common/result.h"

namespace m1::agent {

// `src` if it is already a git work tree; otherwise a copy committed with fixed author, dates
// and message under `cache_dir`/<commit>, so the same files always give the same commit id
// (tasks can name it as base_commit).
Result<std::filesystem::path> materialize_repo(const std::filesystem::path& src,
                                               const std::filesystem::path& cache_dir);
Result<std::string> resolve_commit(const std::filesystem::path& repo, const std::string& rev);
// `git worktree add` of `commit` at `dir`: on a new `branch` when given, detached otherwise.
Status add_worktree(const std::filesystem::path& repo, const std::string& commit,
                    const std::filesystem::path& dir, const std::string& branch);
Status remove_worktree(const std::filesystem::path& repo, const std::filesystem::path& dir,
                       const std::string& branch);
// Everything changed in `worktree` since `base` (new untracked files included, .gitignore'd not).
Result<std::string> diff_since(const std::filesystem::path& worktree, const std::string& base);
// Applies a unified diff with `git apply`; the error carries git's message.
Status git_apply(const std::filesystem::path& worktree, const std::string& patch, const std::string& what);

}  // namespace m1::agent
