"""The handouts of the "mixed" dev-set corpus: four short course handouts
that sit beside the Bash Reference Manual in a shell-scripting course folder.

    python bench/devset/make_handouts.py OUT_DIR

writes

- ``course-info.md``: the course's practical details (Markdown, one page);
- ``lab1-getting-started.docx``: the first lab sheet (Word, one section per
  heading, as ``mentor/office.py`` reads a file Word never laid out);
- ``quoting-cheatsheet.pdf``: a two-page cheat sheet (PDF, reportlab);
- ``assignment2.pdf``: an assignment sheet (PDF, reportlab, two pages).

The course (COMP 2150) and its rules are invented; the shell facts are
Bash's. The output is deterministic: reportlab's invariant mode, and fixed
dates in the Word file's properties and zip entries. In the dev set
(``mixed.jsonl``) a record's ``file`` names one of these files or
``bashref.pdf`` (Debian's bash-doc, /usr/share/doc/bash/bashref.pdf), and its
pages are that file's: the Markdown file is page 1, the Word file's pages are
its sections, the PDFs' pages are physical pages.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from office_package import fix_zip_dates

FIXED_DATE = datetime(2024, 1, 15, 9, 0, 0)

COURSE_INFO = """\
# COMP 2150 Unix Shell Programming: course information

Spring term. Lectures on Tuesdays 10:00-11:30 in room B-204; labs on Thursdays 14:00-16:00 in the Linux lab, room C-110.

## Who teaches it

The lecturer is Dr. Miriam Okafor. Office hours are on Wednesdays from 13:00 to 15:00 in room B-312, or by appointment. Write to the course forum first: questions about the assignments are answered there within two working days, so everyone sees the answer.

## Course material

The reference for the whole course is the Bash Reference Manual (bashref.pdf in this folder), the manual of GNU Bash 5.2. Lecture slides and lab sheets are added to this folder every week.

## How the course is graded

- Four lab sheets: 20% of the grade (5% each)
- Two assignments: 40% of the grade (20% each)
- Final exam: 40% of the grade

You must score at least 40% in the final exam to pass the course, whatever your other marks.

## Deadlines and late work

Assignments are submitted with the submit command on the lab machines before 23:59 on the due date. Late work loses 10% of its mark per day, and work more than five days late gets no marks. Extensions are granted only for documented illness or emergencies: ask the lecturer before the deadline.

## The final exam

The final exam is a two-hour written exam in the exam period. You may bring one double-sided A4 page of handwritten notes; no computers or phones.

## Working together

You may discuss ideas with other students, but every script you submit must be written by you alone. Copying code from another student, or sharing yours, is academic misconduct and is reported to the faculty.
"""

LAB1 = [
    ("title", "Lab 1: Getting started on the lab machines"),
    ("p", "This first lab sheet gets you logged in, shows you where your files live, and has you write and submit your first script. It is worth 5% of the grade."),
    ("h", "Logging in"),
    ("p", "The lab machines run Debian Linux. From your own laptop, log in with ssh to the course server: ssh yourname@shell.cs.example.edu. Use your university username and password; after three failed attempts your account is locked for 15 minutes."),
    ("p", "The first time you connect, ssh asks whether you trust the server's key fingerprint. Compare it with the fingerprint on the course forum before you answer yes."),
    ("h", "Your home directory and disk quota"),
    ("p", "Your home directory is /home/yourname. It is backed up every night, and each student has a disk quota of 2 GB. Check how much you use with the command quota -s."),
    ("p", "Put temporary or large files in /scratch/yourname instead: it has no quota, but it is not backed up and is emptied at the end of every term."),
    ("h", "File permissions"),
    ("p", "Every file has read, write and execute permissions for its owner, its group and everyone else. A script can only be run as ./hello.sh once you have made it executable with chmod u+x hello.sh."),
    ("p", "Keep your course folder private: chmod 700 ~/comp2150 lets only you read, change or enter it. Other students must not be able to read your solutions."),
    ("h", "Your first script"),
    ("p", "Create a file called hello.sh that prints a greeting with your username in it. Every script in this course must start with the line #!/usr/bin/env bash, and must be indented with four spaces, not tabs."),
    ("h", "Submitting your work"),
    ("p", "Submit from the folder that holds your files with the command submit comp2150 lab1 hello.sh. You can submit as often as you like before the deadline; only the last submission is marked. Check what was received with submit --list comp2150 lab1."),
]

CHEATSHEET = [
    ("title", "Quoting cheat sheet"),
    ("sub", "COMP 2150 Unix Shell Programming, handout for week 3"),
    ("h", "The three kinds of quoting"),
    ("p", "Quoting stops the shell from giving special meaning to characters. A backslash quotes the single character that follows it. Single quotes keep every character between them literally, so '$HOME' prints the five characters $HOME. Double quotes keep most characters literally but still expand $variables, $(commands) and $((arithmetic))."),
    ("h", "The course rule: quote every expansion"),
    ("p", "Write \"$file\", not $file. An unquoted variable is split into words at spaces and its words are expanded as filename patterns, so a file called my notes.txt becomes two arguments. Scripts in assignments that leave expansions unquoted lose marks, even when they happen to work on the test files."),
    ("p", "Use \"$@\" to pass on all the arguments of a script unchanged. \"$*\" joins them into one single word, which is almost never what you want."),
    ("h", "Quoting traps seen in past exams"),
    ("p", "A single quote cannot appear inside single quotes, not even after a backslash. End the quoted string, add \\' and start a new one: 'It'\\''s here' prints It's here."),
    ("p", "Inside double quotes a backslash only escapes $, backquote, double quote, backslash and newline. Everywhere else inside double quotes it stays a plain backslash."),
    ("page", ""),
    ("h", "Five examples to try in the lab"),
    ("code", "name='Ada Lovelace'"),
    ("code", "echo $name            # two arguments: Ada and Lovelace"),
    ("code", "echo \"$name\"          # one argument: Ada Lovelace"),
    ("code", "echo 'Cost: $5'       # prints Cost: $5"),
    ("code", "echo \"Today is $(date +%A)\""),
    ("code", "touch \"my notes.txt\" && ls -l \"my notes.txt\""),
    ("h", "When you are unsure"),
    ("p", "Run your script through ShellCheck before you submit it: shellcheck myscript.sh points out unquoted expansions and many other common mistakes. ShellCheck is installed on all lab machines."),
]

ASSIGNMENT = [
    ("title", "Assignment 2: Log file report"),
    ("sub", "COMP 2150 Unix Shell Programming. Due Friday of week 9 at 23:59. Worth 20% of the grade."),
    ("h", "The task"),
    ("p", "Write a Bash script logreport.sh that reads a web server access log and prints a short report. The script takes the log file as its only argument: ./logreport.sh access.log. If it is run without an argument, or the file cannot be read, it prints a usage message to standard error and exits with status 2."),
    ("h", "What the report must contain"),
    ("p", "1. The total number of requests in the log."),
    ("p", "2. The ten IP addresses that made the most requests, with their counts, most frequent first."),
    ("p", "3. The number of requests that received each HTTP status code (200, 404, 500 and so on)."),
    ("p", "4. The busiest hour of the day, as a number from 00 to 23."),
    ("h", "Rules"),
    ("p", "Use only Bash and the standard tools grep, sed, awk, sort, uniq, cut, wc and head. Python, Perl and any other language are not allowed in this assignment. The script must pass ShellCheck without warnings."),
    ("page", ""),
    ("h", "How it is marked"),
    ("p", "Correct output for the four parts of the report: 60 points. Error handling and exit status: 15 points. Code style, comments and quoting: 15 points. A README.txt explaining how to run the script: 10 points."),
    ("h", "What to submit"),
    ("p", "Submit logreport.sh and README.txt with: submit comp2150 a2 logreport.sh README.txt. A sample log, sample-access.log, and the report it should give are in the course folder on the lab machines."),
    ("h", "Testing"),
    ("p", "Your script is run on a hidden log of about 50,000 lines. It must finish within 10 seconds on a lab machine: a script that reads the log once per IP address is too slow."),
]


def build(folder: Path) -> list[Path]:
    """Writes the four handouts into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    info = folder / "course-info.md"
    info.write_text(COURSE_INFO, encoding="utf-8")
    return [
        info,
        _docx(folder / "lab1-getting-started.docx", LAB1),
        _pdf(folder / "quoting-cheatsheet.pdf", CHEATSHEET, "Quoting cheat sheet"),
        _pdf(folder / "assignment2.pdf", ASSIGNMENT, "Assignment 2: Log file report"),
    ]


def _docx(path: Path, blocks: list[tuple[str, str]]) -> Path:
    import docx

    document = docx.Document()
    for kind, text in blocks:
        if kind == "title":
            document.add_heading(text, 0)
        elif kind == "h":
            document.add_heading(text, 1)
        else:
            document.add_paragraph(text)
    props = document.core_properties
    props.title, props.author, props.last_modified_by = blocks[0][1], "AI Mentor bench", "AI Mentor bench"
    props.created = props.modified = FIXED_DATE
    props.revision = 1
    document.save(str(path))
    fix_zip_dates(path, FIXED_DATE)
    return path


def _pdf(path: Path, blocks: list[tuple[str, str]], title: str) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import PageBreak, Paragraph, Preformatted, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    story = []
    for kind, text in blocks:
        if kind == "page":
            story.append(PageBreak())
        elif kind == "code":
            story.append(Preformatted(text, styles["Code"]))
        else:
            style = {"title": "Title", "sub": "Italic", "h": "Heading2", "p": "BodyText"}[kind]
            story.append(Paragraph(_escape(text), styles[style]))
            if kind == "p":
                story.append(Spacer(1, 0.15 * cm))
    doc = SimpleDocTemplate(
        str(path), pagesize=A4, title=title, author="AI Mentor bench", invariant=1,
        leftMargin=2.5 * cm, rightMargin=2.5 * cm, topMargin=2.5 * cm, bottomMargin=2.5 * cm,
    )
    doc.build(story)
    return path


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    for written in build(Path(sys.argv[1])):
        print(written)
