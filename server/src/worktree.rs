//! Jobs in worktrees of their own: a git worktree of the cwd's repository per job,
//! what the job changed there, and taking that change into the checkout it came
//! from. Plain Rust over the `git` command line (git 2.40 or later, for
//! `merge-tree --merge-base`); every function blocks.

use std::{
    ffi::OsStr,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

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

/// The branch of a job's worktree.
pub fn branch(id: JobId) -> String {
    format!("codex-jobs/{id}")
}

/// The repository `dir` is in; an error that says so if it is in none.
pub fn repository(dir: &Path) -> Result<Repository> {
    let output = git(dir, ["rev-parse", "--show-toplevel", "--show-prefix"])
        .map_err(|err| GitError(format!("cannot run git in {}: {err}", dir.display())))?;
    if !output.status.success() {
        return Err(GitError(format!(
            "cwd {} is not in a git repository, and isolation worktree needs one \
             (run `git init` there, or start the job without a worktree)",
            dir.display()
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
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Makes the worktree of job `id` at `path`, on its own branch, at `commit`.
pub fn create(repo: &Repository, id: JobId, commit: &str, path: &Path) -> Result<()> {
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
    checked(output, "could not make the job's worktree").map(drop)
}

/// Commits whatever the job left in its worktree on its branch, and writes the
/// patch from `base` to that commit to `patch`. Returns the change.
pub fn summarize(worktree: &Path, id: JobId, base: &str, patch: &Path) -> Result<Change> {
    checked(run(worktree, ["add", "--all"])?, "git add")?;
    let nothing_staged = run(worktree, ["diff", "--cached", "--quiet"])?
        .status
        .success();
    if !nothing_staged {
        let message = format!("codex-jobs: the work of job {id}");
        let output = run(
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
        )?;
        checked(output, "could not commit the job's work")?;
    }
    let head = checked(run(worktree, ["rev-parse", "HEAD"])?, "git rev-parse")?;
    let head = String::from_utf8_lossy(&head).trim().to_string();
    let numstat = checked(
        run(
            worktree,
            ["diff", "--numstat", "-z", "--no-renames", base, &head],
        )?,
        "git diff --numstat",
    )?;
    let diff = checked(
        run(worktree, ["diff", "--binary", "--no-renames", base, &head])?,
        "git diff",
    )?;
    std::fs::write(patch, &diff)
        .map_err(|err| GitError(format!("cannot write {}: {err}", patch.display())))?;
    Ok(Change {
        base_commit: base.to_string(),
        head_commit: head,
        branch: branch(id),
        files: parse_numstat(&numstat),
        patch_size: diff.len() as u64,
    })
}

/// `git diff --numstat -z`: `ADDED\tREMOVED\tPATH\0` per file, `-` for binary.
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
    let ours = working_tree(repo, scratch);
    let _ = std::fs::remove_file(scratch);
    let ours = ours?;
    let merge = run(
        &repo.top,
        [
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            &format!("--merge-base={}", change.base_commit),
            &ours,
            &change.head_commit,
        ],
    )?;
    let text = String::from_utf8_lossy(&merge.stdout).to_string();
    let mut lines = text.lines();
    let merged = lines.next().unwrap_or_default().to_string();
    match merge.status.code() {
        Some(0) => {}
        Some(1) => {
            let mut files: Vec<String> = lines
                .take_while(|line| !line.is_empty())
                .map(String::from)
                .collect();
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
        run(&repo.top, ["diff", "--name-only", "-z", &ours, &merged])?,
        "git diff --name-only",
    )?;
    let files: Vec<String> = String::from_utf8_lossy(&names)
        .split('\0')
        .filter(|name| !name.is_empty())
        .map(String::from)
        .collect();
    if files.is_empty() {
        return Ok(files);
    }
    let patch = checked(
        run(&repo.top, ["diff", "--binary", &ours, &merged])?,
        "git diff",
    )?;
    let mut child = Command::new("git")
        .current_dir(&repo.top)
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
    let index = PathBuf::from(String::from_utf8_lossy(&index).trim());
    // A copy of the checkout's index: its file stats spare git rereading every file.
    if std::fs::copy(&index, scratch).is_err() {
        let _ = std::fs::remove_file(scratch);
    }
    let with_scratch = |args: &[&str]| {
        Command::new("git")
            .current_dir(&repo.top)
            .args(args)
            .env("GIT_INDEX_FILE", scratch)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .map_err(|err| GitError(format!("cannot run git in {}: {err}", repo.top.display())))
    };
    checked(with_scratch(&["add", "--all"])?, "git add")?;
    let tree = checked(with_scratch(&["write-tree"])?, "git write-tree")?;
    Ok(String::from_utf8_lossy(&tree).trim().to_string())
}

/// Removes the worktree at `path` and its branch from `repo`'s records. What is
/// gone already is no error.
pub fn remove(repo_dir: &Path, path: &Path, id: JobId) -> Result<()> {
    if path.exists() {
        let output = run(
            repo_dir,
            [
                OsStr::new("worktree"),
                OsStr::new("remove"),
                OsStr::new("--force"),
                path.as_os_str(),
            ],
        )?;
        checked(output, "could not remove the job's worktree")?;
    } else {
        // Its directory went some other way: forget it.
        checked(run(repo_dir, ["worktree", "prune"])?, "git worktree prune")?;
    }
    let output = run(repo_dir, ["branch", "-D", "--quiet", &branch(id)])?;
    if !output.status.success() && !String::from_utf8_lossy(&output.stderr).contains("not found") {
        return checked(output, "could not delete the job's branch").map(drop);
    }
    Ok(())
}

/// Runs git in `dir`, with no terminal prompts and no user config of hooks.
fn git<I, S>(dir: &Path, args: I) -> std::io::Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
}

/// `git`, with a failure to run it said as a `GitError`.
fn run<I, S>(dir: &Path, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    git(dir, args).map_err(|err| GitError(format!("cannot run git in {}: {err}", dir.display())))
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
}
