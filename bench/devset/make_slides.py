"""The "slides" dev-set corpus: a lecture deck on version control with Git,
written here as title + bullet points per slide and saved as .pptx with
python-pptx.

    python bench/devset/make_slides.py OUT_DIR      # writes OUT_DIR/git-lecture.pptx

The deck is made, not downloaded: the dev set (``slides.jsonl``) needs a slide
deck whose every word is known, and lecture decks in Debian are PDFs. The
output is deterministic: the same slides in the same order, fixed document
properties, and fixed dates inside the zip, so the same script gives the same
bytes. A slide's "page" in the dev set is its 1-based number in the deck, as
``mentor.documents`` numbers them (``Page.index``; the label is "slide N").
Three slides carry speaker notes, which the mentor reads as "Notes: …".
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from office_package import fix_zip_dates

NAME = "git-lecture.pptx"
FIXED_DATE = datetime(2024, 1, 15, 9, 0, 0)

# (title, bullet points, speaker notes or "")
SLIDES: list[tuple[str, list[str], str]] = [
    (
        "Version Control with Git",
        ["Lecture 6 of Programming Practice", "From a single file history to working in a team"],
        "",
    ),
    (
        "Why keep a history of your code?",
        [
            "Undo a change that broke the program, days after you made it",
            "See who changed a line, when, and why",
            "Try out an idea without risking the version that works",
            "Several people can work on the same project at the same time",
        ],
        "",
    ),
    (
        "Centralised and distributed version control",
        [
            "Centralised systems such as Subversion keep the one history on a server",
            "In a distributed system every clone holds the complete history",
            "Git is distributed: most commands work offline, without a network",
            "A server such as GitHub or GitLab is just one more copy that the team agrees to share",
        ],
        "",
    ),
    (
        "A short history of Git",
        [
            "Written by Linus Torvalds in April 2005 for the development of the Linux kernel",
            "It replaced BitKeeper, whose free licence for kernel developers had been withdrawn",
            "Design goals: speed, a simple design, and strong support for thousands of parallel branches",
            "Maintained by Junio Hamano since July 2005",
        ],
        "",
    ),
    (
        "Installing and configuring Git",
        [
            "Debian and Ubuntu: sudo apt install git; macOS: it comes with the Xcode command line tools",
            "Tell Git who you are before your first commit:",
            "git config --global user.name \"Ada Lovelace\"",
            "git config --global user.email ada@example.org",
            "Settings given with --global are stored in ~/.gitconfig and apply to every repository",
        ],
        "",
    ),
    (
        "Creating a repository",
        [
            "git init turns the current folder into a repository",
            "It creates a hidden .git folder that holds the whole history and the settings",
            "Delete the .git folder and the history is gone: the files stay, the versions do not",
            "git clone URL copies an existing repository, with its full history",
        ],
        "",
    ),
    (
        "The three areas",
        [
            "Working tree: the files as you see and edit them",
            "Staging area (the index): what will go into the next commit",
            "Repository: the commits that have been recorded",
            "A change moves from the working tree to the staging area with git add, and into the history with git commit",
        ],
        "Draw the three boxes on the board and move one file through them.",
    ),
    (
        "Checking where you are: git status",
        [
            "Lists files that are changed but not staged, staged for the next commit, or untracked",
            "Untracked means Git sees the file but has never been told to keep it",
            "Run it before every commit: it is the command you will type most often",
        ],
        "",
    ),
    (
        "Staging changes with git add",
        [
            "git add file.py stages one file; git add . stages everything below the current folder",
            "git add -p goes through your changes hunk by hunk and asks which ones to stage",
            "Staging lets one editing session become several small, focused commits",
        ],
        "",
    ),
    (
        "Recording a commit",
        [
            "git commit -m \"Fix off-by-one error in page count\"",
            "A commit is a snapshot of the whole project, not a list of differences",
            "Every commit has an author, a date, a message and a pointer to its parent commit",
            "Each commit is named by a 40-character SHA-1 hash of its contents",
        ],
        "",
    ),
    (
        "Writing good commit messages",
        [
            "First line: a short summary of about 50 characters, in the imperative: \"Add login form\"",
            "Then a blank line, then a body that explains why the change was made",
            "Messages like \"fix\" or \"stuff\" make the history useless a month later",
        ],
        "",
    ),
    (
        "Reading the history: git log",
        [
            "git log lists commits, newest first",
            "git log --oneline shows one line per commit: short hash and summary",
            "git log --graph --all draws the branches as lines of text",
            "git log -p file.py shows every change ever made to that file",
        ],
        "",
    ),
    (
        "Seeing what changed: git diff",
        [
            "git diff: changes in the working tree that are not staged yet",
            "git diff --staged: what the next commit will contain",
            "git diff main feature: the difference between two branches",
            "Lines starting with + were added, lines starting with - were removed",
        ],
        "",
    ),
    (
        "Ignoring files with .gitignore",
        [
            "List patterns of files Git should never track, one per line",
            "Typical entries: __pycache__/, *.pyc, .venv/, build outputs and editor settings",
            "Never commit passwords or API keys: once pushed, assume they are public",
            "A file that is already tracked stays tracked until you run git rm --cached on it",
        ],
        "",
    ),
    (
        "Undoing changes in the working tree",
        [
            "git restore file.py throws away unstaged edits to that file",
            "git restore --staged file.py unstages it but keeps your edits",
            "Careful: changes that were never committed cannot be recovered afterwards",
        ],
        "",
    ),
    (
        "Undoing commits",
        [
            "git commit --amend replaces the last commit, for example to fix its message",
            "git revert HASH makes a new commit that undoes an old one: safe on shared branches",
            "git reset --hard HASH moves the branch back and discards later work: use it only on commits nobody else has",
        ],
        "Students mix up revert and reset every year: stress that revert adds history and reset rewrites it.",
    ),
    (
        "What a branch really is",
        [
            "A branch is a movable pointer to a commit, stored as a tiny file of 41 bytes",
            "Creating a branch is instant and copies no files",
            "HEAD is the pointer to the branch you are on now",
            "The default branch is called main in new repositories (older ones use master)",
        ],
        "",
    ),
    (
        "Working with branches",
        [
            "git branch feature creates a branch; git branch alone lists them",
            "git switch feature moves to it; git switch -c feature creates and switches in one step",
            "Older tutorials use git checkout for the same job",
            "Commit or stash your changes before switching, or Git may refuse",
        ],
        "",
    ),
    (
        "Merging branches",
        [
            "git merge feature brings the commits of feature into the current branch",
            "Fast-forward merge: when the current branch has no new commits, its pointer simply moves ahead",
            "Otherwise Git makes a merge commit, which has two parents",
        ],
        "",
    ),
    (
        "Merge conflicts",
        [
            "A conflict happens when both branches changed the same lines",
            "Git marks the place with <<<<<<<, ======= and >>>>>>> in the file",
            "Edit the file to the version you want, remove the markers, then git add and git commit",
            "git merge --abort gives up and returns to the state before the merge",
        ],
        "",
    ),
    (
        "Rebasing",
        [
            "git rebase main replays the commits of your branch on top of the latest main",
            "The result is a straight line of history without merge commits",
            "Rebasing rewrites commits: never rebase commits that others have already pulled",
        ],
        "",
    ),
    (
        "Putting work aside: git stash",
        [
            "git stash saves uncommitted changes and cleans the working tree",
            "git stash pop brings the latest stashed changes back",
            "Useful when an urgent bug fix interrupts half-finished work",
        ],
        "",
    ),
    (
        "Remote repositories",
        [
            "A remote is a named URL of another copy of the repository",
            "git clone names the remote it came from origin",
            "git remote -v lists the remotes and their URLs",
            "git remote add upstream URL adds another one, for example the original of a fork",
        ],
        "",
    ),
    (
        "Fetch, pull and push",
        [
            "git fetch downloads new commits from the remote but changes none of your branches",
            "git pull is git fetch followed by a merge (or a rebase, with --rebase)",
            "git push sends your commits to the remote branch",
            "A push is rejected when the remote has commits you do not have yet: pull first",
        ],
        "",
    ),
    (
        "Tracking branches",
        [
            "A local branch can track a remote branch, such as origin/main",
            "git push -u origin feature pushes and sets up tracking in one step",
            "Afterwards plain git push and git pull know where to go",
            "git status then says how many commits you are ahead of or behind the remote",
        ],
        "",
    ),
    (
        "Pull requests and code review",
        [
            "A pull request (GitLab: merge request) asks the team to merge a branch",
            "Reviewers comment on single lines before the change is merged",
            "Automated tests usually run on every pull request",
            "Keep pull requests small: a review of 200 lines is read, one of 2000 lines is skimmed",
        ],
        "",
    ),
    (
        "A team workflow: feature branches",
        [
            "main always holds working code",
            "Every task gets its own short-lived branch, named after the task",
            "The branch is merged through a pull request once the review and the tests pass",
            "Delete the branch after merging: git branch -d feature",
        ],
        "",
    ),
    (
        "Tags and releases",
        [
            "A tag is a fixed name for one commit, for example v1.0",
            "git tag -a v1.0 -m \"First release\" makes an annotated tag with its own message",
            "Tags are not pushed by default: git push origin v1.0",
        ],
        "",
    ),
    (
        "Who wrote this line? git blame",
        [
            "git blame file.py shows, for every line, the commit and author that last changed it",
            "Use it to find the commit message that explains a strange line, not to blame people",
        ],
        "",
    ),
    (
        "Finding the commit that broke it: git bisect",
        [
            "git bisect start, then mark one bad and one good commit",
            "Git checks out the commit halfway between; you test it and answer good or bad",
            "A binary search: about 10 steps find the culprit among 1000 commits",
            "git bisect reset returns to where you started",
        ],
        "",
    ),
    (
        "Large files and binary data",
        [
            "Git stores every version of every file: a 100 MB dataset committed ten times costs 1 GB",
            "Keep large data out of the repository, or use the Git LFS extension",
            "Binary files such as images cannot be merged line by line",
        ],
        "",
    ),
    (
        "Common mistakes",
        [
            "Committed to the wrong branch: create a branch at that commit, then reset the old branch",
            "Committed a secret: change the password at once; removing it from the history is not enough",
            "Detached HEAD: you checked out a commit, not a branch; create a branch before committing there",
        ],
        "If time allows, demonstrate the detached HEAD state live.",
    ),
    (
        "Summary",
        [
            "Commit small, focused changes with messages that explain why",
            "Use a branch for every task and merge it through review",
            "Pull before you push, and never rewrite history that others have",
        ],
        "",
    ),
    (
        "Exercises for the lab",
        [
            "Create a repository, make three commits, and show them with git log --oneline",
            "Provoke a merge conflict on purpose between two branches and resolve it",
            "Fork the course repository, push a branch, and open a pull request",
        ],
        "",
    ),
]


def build(folder: Path) -> Path:
    """Writes the deck into ``folder``; returns its path."""
    from pptx import Presentation

    deck = Presentation()
    layout = deck.slide_layouts[1]  # "Title and Content"
    for title, bullets, notes in SLIDES:
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = bullets[0]
        for bullet in bullets[1:]:
            body.add_paragraph().text = bullet
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    props = deck.core_properties
    props.title, props.author, props.last_modified_by = "Version Control with Git", "AI Mentor bench", "AI Mentor bench"
    props.created = props.modified = FIXED_DATE
    props.revision = 1
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NAME
    deck.save(str(path))
    fix_zip_dates(path, FIXED_DATE)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    print(build(Path(sys.argv[1])))
