//! Jobs in worktrees of their own: a git worktree of the cwd's repository per job,
//! what the job changed there, and taking that change into the checkout it came
//! from. Plain Rust over the `git` command line (git 2.40 or later, for
//! `merge-tree --merge-base`); every function blocks.
//!
//! Git runs here outside the job's sandbox, in directories the job could write to,
//! so it never runs hooks (`core.hooksPath=/dev/null`) and never takes a repository
//! from the server's environment; patches come from plumbing (`diff-tree`), which
//! no diff setting of the user or the repository changes.

use std::{
    ffi::OsStr,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde::{Deserialize, Serialize};

use crate::job::{Change, FileChange, JobId};

/// A failure of git, in a sentence a person can act on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GitError(pub String);

pub type Result<T> = std::result::Result<T, GitError>;

/// The repository a directory is in, and where in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Repository {
    /// The top of its working tree.
    pub top: PathBuf,
    /// The directory, relative to `top`.
    pub subdir: PathBuf,
}

/// A job's worktree once it is made: what its change is measured from, and the
/// repository that keeps its records (and its branch).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Made {
    /// The commit it was made at.
    pub base: String,
    /// The repository's common git directory.
    pub git_dir: PathBuf,
}

/// The branch of a job's worktree.
pub fn branch(id: JobId) -> String {
    format!("codex-jobs/{id}")
}

/// The repository `dir` is in; an error that says so if it is in none.
pub fn repository(dir: &Path) -> Result<Repository> {
    let output = run(dir, ["rev-parse", "--show-toplevel", "--show-prefix"])?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        return Err(GitError(format!(
            "cwd {} is not in a git repository, and isolation worktree needs one \
             (run `git init` there, or start the job without a worktree); git: {}",
            dir.display(),
            said.lines().next().unwrap_or_default()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let top = lines.next().unwrap_or_default();
    let prefix = lines.next().unwrap_or_default();
    Ok(Repository {
        top: PathBuf::from(top),
        subdir: PathBuf::from(prefix.trim_end_matches('/')),
    })
}

/// The commit `base` names in `repo` (HEAD when empty).
pub fn resolve(repo: &Repository, base: &str) -> Result<String> {
    let name = if base.is_empty() { "HEAD" } else { base };
    let output = run(
        &repo.top,
        [
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{name}^{{commit}}"),
        ],
    )?;
    if !output.status.success() {
        return Err(GitError(match base {
            "" => format!(
                "the repository at {} has no commit yet; a worktree starts from one",
                repo.top.display()
            ),
            base => format!(
                "base {base:?} names no commit of the repository at {}",
                repo.top.display()
            ),
        }));
    }
    Ok(text(output.stdout))
}

/// Makes the worktree of job `id` at `path`, on its own branch, at `commit`.
pub fn create(repo: &Repository, id: JobId, commit: &str, path: &Path) -> Result<Made> {
    check_commit(commit)?;
    let output = run(
        &repo.top,
        [
            OsStr::new("worktree"),
            OsStr::new("add"),
            OsStr::new("--quiet"),
            OsStr::new("-b"),
            OsStr::new(&branch(id)),
            path.as_os_str(),
            OsStr::new(commit),
        ],
    )?;
    checked(output, "could not make the job's worktree")?;
    let git_dir = checked(
        run(
            &repo.top,
            ["rev-parse", "--path-format=absolute", "--git-common-dir"],
        )?,
        "git rev-parse --git-common-dir",
    )?;
    Ok(Made {
        base: commit.to_string(),
        git_dir: PathBuf::from(text(git_dir)),
    })
}

/// Commits whatever the job left in its worktree, points its branch at that
/// commit, and writes the patch from its base to `patch`. Returns the change.
pub fn summarize(worktree: &Path, made: &Made, id: JobId, patch: &Path) -> Result<Change> {
    check_commit(&made.base)?;
    // Git looks upwards for a repository: one whose worktree lost its `.git` would
    // find the one the state dir may be in.
    let top = run(worktree, ["rev-parse", "--show-toplevel"])?;
    let real = |path: &Path| path.canonicalize().ok();
    if !top.status.success() || real(Path::new(&text(top.stdout))) != real(worktree) {
        return Err(GitError(format!(
            "{} is no longer a git worktree (was its .git removed?)",
            worktree.display()
        )));
    }
    checked(run(worktree, ["add", "--all"])?, "git add")?;
    let nothing_staged = run(worktree, ["diff", "--cached", "--quiet"])?
        .status
        .success();
    if !nothing_staged {
        let message = format!("codex-jobs: the work of job {id}");
        checked(
            run(
                worktree,
                [
                    "-c",
                    "user.name=codex-jobs",
                    "-c",
                    "user.email=codex-jobs@localhost",
                    "-c",
                    "commit.gpgsign=false",
                    "commit",
                    "--quiet",
                    "--no-verify",
                    "-m",
                    &message,
                ],
            )?,
            "could not commit the job's work",
        )?;
    }
    let head = text(checked(
        run(worktree, ["rev-parse", "HEAD"])?,
        "git rev-parse",
    )?);
    // The branch holds the work, whichever branch (or none) the job left checked out.
    let branch = branch(id);
    checked(
        run(
            worktree,
            ["update-ref", &format!("refs/heads/{branch}"), &head],
        )?,
        "git update-ref",
    )?;
    let numstat = checked(
        run(
            worktree,
            [
                "diff-tree",
                "-r",
                "--numstat",
                "-z",
                "--no-renames",
                &made.base,
                &head,
            ],
        )?,
        "git diff-tree --numstat",
    )?;
    let diff = checked(
        run(
            worktree,
            [
                "diff-tree",
                "-r",
                "-p",
                "--binary",
                "--no-renames",
                &made.base,
                &head,
            ],
        )?,
        "git diff-tree -p",
    )?;
    std::fs::write(patch, &diff)
        .map_err(|err| GitError(format!("cannot write {}: {err}", patch.display())))?;
    Ok(Change {
        base_commit: made.base.clone(),
        head_commit: head,
        branch,
        files: parse_numstat(&numstat),
        patch_size: diff.len() as u64,
    })
}

/// `git diff-tree --numstat -z`: `ADDED\tREMOVED\tPATH\0` per file, `-` for binary.
fn parse_numstat(text: &[u8]) -> Vec<FileChange> {
    String::from_utf8_lossy(text)
        .split('\0')
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| {
            let mut fields = entry.splitn(3, '\t');
            let added = fields.next()?;
            let removed = fields.next()?;
            let path = fields.next()?.to_string();
            let lines = added.parse().ok().zip(removed.parse().ok());
            Some(FileChange { path, lines })
        })
        .collect()
}

/// Why a change was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The checkout's own changes (committed or not) touch the same lines.
    #[error("conflicts")]
    Conflicts(Vec<String>),
    #[error(transparent)]
    Git(#[from] GitError),
}

/// Takes `change` into the working tree of `repo` by a three-way merge of the
/// checkout as it is (uncommitted and untracked files included) with the job's
/// work, on the job's base. On conflicts, or any failure, the checkout is left as
/// it was: the merge is computed on trees in the object store, and written with
/// one `git apply`, which changes every file or none. `scratch` is a file git may
/// use as an index of its own meanwhile. Returns the files changed.
pub fn apply(
    repo: &Repository,
    change: &Change,
    scratch: &Path,
) -> std::result::Result<Vec<String>, ApplyError> {
    check_commit(&change.base_commit)?;
    check_commit(&change.head_commit)?;
    let tree = working_tree(repo, scratch);
    let _ = std::fs::remove_file(scratch);
    // A commit of it: merge-tree takes bare trees only from git 2.45 on.
    let ours = text(checked(
        run(
            &repo.top,
            [
                "-c",
                "user.name=codex-jobs",
                "-c",
                "user.email=codex-jobs@localhost",
                "commit-tree",
                &tree?,
                "-p",
                "HEAD",
                "-m",
                "codex-jobs: the checkout as it is",
            ],
        )?,
        "git commit-tree",
    )?);
    let merge = run(
        &repo.top,
        [
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            "-z",
            &format!("--merge-base={}", change.base_commit),
            &ours,
            &change.head_commit,
        ],
    )?;
    // `TREE\0` then, on conflicts, `PATH\0` for each conflicted file.
    let mut fields = nul_separated(&merge.stdout).into_iter();
    let merged = fields.next().unwrap_or_default();
    match merge.status.code() {
        Some(0) => {}
        Some(1) => {
            let mut files: Vec<String> = fields.collect();
            files.sort();
            files.dedup();
            return Err(ApplyError::Conflicts(files));
        }
        _ => {
            return Err(GitError(format!(
                "git merge-tree failed: {}",
                String::from_utf8_lossy(&merge.stderr).trim()
            ))
            .into());
        }
    }
    let names = checked(
        run(
            &repo.top,
            [
                "diff-tree",
                "-r",
                "--name-only",
                "-z",
                "--no-renames",
                &ours,
                &merged,
            ],
        )?,
        "git diff-tree --name-only",
    )?;
    let files = nul_separated(&names);
    if files.is_empty() {
        return Ok(files);
    }
    let patch = checked(
        run(
            &repo.top,
            [
                "diff-tree",
                "-r",
                "-p",
                "--binary",
                "--no-renames",
                &ours,
                &merged,
            ],
        )?,
        "git diff-tree -p",
    )?;
    let mut child = git(&repo.top)
        .args(["apply", "--whitespace=nowarn", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| GitError(format!("cannot run git: {err}")))?;
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&patch);
    let output = child
        .wait_with_output()
        .map_err(|err| GitError(format!("git apply: {err}")))?;
    if let Err(err) = written
        && output.status.success()
    {
        return Err(GitError(format!("could not hand the patch to git apply: {err}")).into());
    }
    checked(
        output,
        "the checkout refused the change (nothing was changed)",
    )?;
    Ok(files)
}

/// The working tree of `repo` as a tree object, untracked files included (ignored
/// ones not), written through the index at `scratch` so that the checkout's own
/// index is left alone.
fn working_tree(repo: &Repository, scratch: &Path) -> Result<String> {
    let index = checked(
        run(
            &repo.top,
            ["rev-parse", "--path-format=absolute", "--git-path", "index"],
        )?,
        "git rev-parse --git-path index",
    )?;
    // A copy of the checkout's index: its file stats spare git rereading every file.
    if std::fs::copy(text(index), scratch).is_err() {
        let _ = std::fs::remove_file(scratch);
    }
    let with_scratch = |args: &[&str]| {
        git(&repo.top)
            .args(args)
            .env("GIT_INDEX_FILE", scratch)
            .output()
            .map_err(|err| GitError(format!("cannot run git in {}: {err}", repo.top.display())))
    };
    checked(with_scratch(&["add", "--all"])?, "git add")?;
    Ok(text(checked(
        with_scratch(&["write-tree"])?,
        "git write-tree",
    )?))
}

/// Removes the worktree at `path` and the branch of job `id` from the repository
/// of `made` (or, for a worktree never made whole, the one `cwd` is in). What is
/// gone already is no error; what cannot be removed is, after trying the rest.
pub fn remove(made: Option<&Made>, cwd: &Path, path: &Path, id: JobId) -> Result<()> {
    let in_repo = |args: &[&OsStr]| {
        let mut command = git(cwd);
        if let Some(made) = made {
            command.arg("--git-dir").arg(&made.git_dir);
        }
        command
            .args(args)
            .output()
            .map_err(|err| GitError(format!("cannot run git: {err}")))
    };
    let removed = in_repo(&[
        OsStr::new("worktree"),
        OsStr::new("remove"),
        OsStr::new("--force"),
        path.as_os_str(),
    ])
    .and_then(|output| {
        let gone = String::from_utf8_lossy(&output.stderr).contains("is not a working tree");
        match gone {
            true => Ok(Vec::new()),
            false => checked(output, "could not remove the job's worktree"),
        }
    });
    let branch = branch(id);
    let deleted = in_repo(&[
        OsStr::new("branch"),
        OsStr::new("-D"),
        OsStr::new("--quiet"),
        OsStr::new(&branch),
    ])
    .and_then(|output| {
        let gone = String::from_utf8_lossy(&output.stderr).contains("not found");
        match gone {
            true => Ok(Vec::new()),
            false => checked(output, "could not delete the job's branch"),
        }
    });
    removed.and(deleted).map(drop)
}

/// A `git` command in `dir` that runs no hooks, asks nothing, and takes no
/// repository from the server's environment.
fn git(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
        ])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    for name in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_NAMESPACE",
        "GIT_CEILING_DIRECTORIES",
    ] {
        command.env_remove(name);
    }
    command
}

/// Runs `git` with `args` and returns what it did; a failure to run it at all is
/// an error.
fn run<I, S>(dir: &Path, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    git(dir)
        .args(args)
        .output()
        .map_err(|err| GitError(format!("cannot run git in {}: {err}", dir.display())))
}

/// The output of a git that succeeded; else what it said, after `what`.
fn checked(output: Output, what: &str) -> Result<Vec<u8>> {
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(GitError(format!(
            "{what}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// One line of git's output, trimmed.
fn text(output: Vec<u8>) -> String {
    String::from_utf8_lossy(&output).trim().to_string()
}

/// The fields of git's `-z` output.
fn nul_separated(output: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(output)
        .split('\0')
        .filter(|field| !field.is_empty())
        .map(String::from)
        .collect()
}

/// A commit id as git prints it: never an option, never a range.
fn check_commit(commit: &str) -> Result<()> {
    if (4..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(GitError(format!("{commit:?} is not a commit id")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numstat_reads_text_and_binary_files() {
        let files = parse_numstat(b"3\t1\tsrc/a.rs\0-\t-\timg.png\0");
        assert_eq!(
            files,
            vec![
                FileChange {
                    path: "src/a.rs".into(),
                    lines: Some((3, 1))
                },
                FileChange {
                    path: "img.png".into(),
                    lines: None
                },
            ]
        );
    }

    #[test]
    fn only_commit_ids_pass_for_commits() {
        assert!(check_commit("0123456789abcdef0123456789abcdef01234567").is_ok());
        for bad in ["", "--output=x", "main", "a..b", "HEAD~1"] {
            assert!(check_commit(bad).is_err(), "{bad}");
        }
    }
}
