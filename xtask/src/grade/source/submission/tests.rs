//! Submissions as students make them, and the ones refused.

use super::*;

const EX1: &str = STEPS[0];
const EX5: &str = STEPS[4];

/// The steps a test grades.
type Graded<'a> = &'a [&'static str];
/// An upload's files: path and contents.
type Files = Vec<(String, &'static str)>;

/// A tree of `files` (path, contents) in a fresh temporary directory.
fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "xtask-submission-unit-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// A workbook of two steps, its release recorded.
fn workbook(name: &str) -> (PathBuf, Release) {
    let root = tree(
        &format!("{name}-workbook"),
        &[
            ("Cargo.toml", "[workspace]\n"),
            ("exercises/hints.toml", "hints"),
            (&format!("exercises/{EX1}/Cargo.toml"), "ex1 manifest"),
            (&format!("exercises/{EX1}/README.md"), "ex1 sheet"),
            (&format!("exercises/{EX1}/src/main.rs"), "ex1 skeleton"),
            (&format!("exercises/{EX5}/Cargo.toml"), "ex5 manifest"),
            (&format!("exercises/{EX5}/src/main.rs"), "ex5 skeleton"),
            (&format!("exercises/{EX5}/src/bin/print_time.rs"), "ex5 bin"),
        ],
    );
    std::fs::create_dir_all(root.join("xtask")).unwrap();
    super::super::released::bless(&root).unwrap();
    let release = Release::load(&root).unwrap();
    (root, release)
}

/// Where each accepted file goes, or the refusal.
fn taken(
    dir: &Path,
    root: &Path,
    release: &Release,
    graded: &[&'static str],
) -> Result<Vec<String>, String> {
    check(dir, root, graded, release).map(|accepted| {
        accepted
            .placements
            .iter()
            .map(|p| p.to.display().to_string())
            .collect()
    })
}

#[test]
fn every_layout_students_make_is_placed() {
    let (root, release) = workbook("layouts");
    let one = &[EX1][..];
    let all = &STEPS[..];
    let main = format!("{EX1}/src/main.rs");
    let cases: Vec<(&str, Files, Graded)> = vec![
        (
            "step-folder",
            vec![
                (main.clone(), "mine"),
                (".DS_Store".into(), "x"),
                ("__MACOSX/._main.rs".into(), "x"),
            ],
            all,
        ),
        (
            "exercises-zip",
            vec![
                (format!("exercises/{EX1}/src/main.rs"), "mine"),
                (format!("exercises/{EX1}/Cargo.toml"), "ex1 manifest"),
                (format!("exercises/{EX1}/README.md"), "ex1 sheet"),
                ("exercises/hints.toml".into(), "hints"),
            ],
            all,
        ),
        (
            "exercises-contents",
            vec![
                (main.clone(), "mine"),
                (format!("{EX1}/Cargo.toml"), "ex1 manifest"),
                ("hints.toml".into(), "hints"),
            ],
            all,
        ),
        (
            "download-zip",
            vec![
                ("workbook-main/Cargo.toml".into(), "[workspace]\n"),
                (format!("workbook-main/exercises/{EX1}/src/main.rs"), "mine"),
                ("workbook-main/tests/junk.toml".into(), "x"),
            ],
            all,
        ),
        (
            "clone-listing-other-members",
            vec![
                (
                    "Cargo.toml".into(),
                    "[workspace]\nmembers = [\"solutions/*\"]\n",
                ),
                (format!("exercises/{EX1}/src/main.rs"), "mine"),
            ],
            all,
        ),
        (
            "download-zip-of-steps",
            vec![(format!("workbook-main/{main}"), "mine")],
            all,
        ),
        ("main-alone", vec![("main.rs".into(), "mine")], one),
        ("src-alone", vec![("src/main.rs".into(), "mine")], one),
        (
            "src-in-a-folder",
            vec![("upload/src/main.rs".into(), "mine")],
            one,
        ),
    ];
    for (name, files, graded) in cases {
        let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), *t)).collect();
        let dir = tree(name, &files);
        assert_eq!(
            taken(&dir, &root, &release, graded),
            Ok(vec![main.clone()]),
            "{name}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
    // A loose file named as a released one goes where that one is.
    let dir = tree(
        "ex5-loose",
        &[("main.rs", "m"), ("print_time.rs", "p"), ("extra.rs", "e")],
    );
    assert_eq!(
        taken(&dir, &root, &release, &[EX5]),
        Ok(vec![
            format!("{EX5}/src/bin/print_time.rs"),
            format!("{EX5}/src/extra.rs"),
            format!("{EX5}/src/main.rs"),
        ])
    );
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn what_would_change_the_build_is_refused_and_the_rest_noted() {
    let (root, release) = workbook("refusals");
    let main = format!("{EX1}/src/main.rs");
    for (name, extra, why) in [
        (
            "manifest",
            format!("{EX1}/Cargo.toml"),
            "Cargo.toml (changed)",
        ),
        (
            "build-rs",
            format!("{EX1}/build.rs"),
            "build.rs (not in the workbook)",
        ),
        (
            "cargo-config",
            ".cargo/config.toml".to_string(),
            ".cargo/config.toml (not in the workbook)",
        ),
        (
            "manifest-beside-steps",
            "Cargo.toml".to_string(),
            "Cargo.toml (not in the workbook)",
        ),
        (
            "toolchain",
            "rust-toolchain.toml".to_string(),
            "rust-toolchain.toml (not in the workbook)",
        ),
    ] {
        let dir = tree(
            name,
            &[(main.as_str(), "mine"), (extra.as_str(), "changed")],
        );
        let refusal = taken(&dir, &root, &release, &STEPS).unwrap_err();
        assert!(
            refusal.contains(why) && refusal.contains("upload only"),
            "{name}: {refusal}"
        );
        assert_eq!(refusal.lines().count(), 1, "{refusal}");
        let _ = std::fs::remove_dir_all(dir);
    }
    // A link, wherever it is.
    let dir = tree("link", &[(main.as_str(), "mine")]);
    std::os::unix::fs::symlink("/etc/passwd", dir.join(EX1).join("src/other.rs")).unwrap();
    let refusal = taken(&dir, &root, &release, &STEPS).unwrap_err();
    assert!(refusal.contains("other.rs (a link)"), "{refusal}");
    let _ = std::fs::remove_dir_all(dir);
    // Loose sources with several steps graded: for which step?
    let dir = tree("loose-several", &[("main.rs", "mine")]);
    let refusal = taken(&dir, &root, &release, &STEPS).unwrap_err();
    assert!(
        refusal.contains("main.rs is not in a step's folder"),
        "{refusal}"
    );
    let _ = std::fs::remove_dir_all(dir);
    // A file never used: accepted, and noted.
    let dir = tree(
        "notes",
        &[
            (main.as_str(), "mine"),
            ("notes.txt", "x"),
            (&format!("{EX1}/README.md"), "mine"),
        ],
    );
    let accepted = check(&dir, &root, &STEPS, &release).unwrap();
    assert_eq!(accepted.steps.iter().copied().collect::<Vec<_>>(), [EX1]);
    let note = accepted.note.unwrap();
    assert!(
        note.contains("notes.txt") && note.contains("README.md"),
        "{note}"
    );
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_checkout_takes_left_out_files_from_the_release() {
    let (root, release) = workbook("checkout");
    // The instructor solved both steps in the checkout, after release.
    for step in [EX1, EX5] {
        std::fs::write(
            root.join("exercises").join(step).join("src/main.rs"),
            "solved",
        )
        .unwrap();
    }
    assert_eq!(release.changed_in_checkout().len(), 2);
    assert!(release.note().unwrap().contains("and 1 more"));
    let slot = tree("checkout-slot", &[]);
    let theirs = tree(
        "checkout-submission",
        &[(&format!("{EX5}/src/main.rs"), "mine")],
    );
    let accepted = check(&theirs, &root, &STEPS, &release).unwrap();
    // ex5's bin is the release's and its main the student's; without
    // git history the release of ex1's main cannot be had, and ex1 is
    // not built: a placeholder keeps cargo's metadata whole.
    checkout(&root, &slot, &release, &accepted.placements).unwrap();
    let read = |p: &str| std::fs::read_to_string(slot.join("exercises").join(p)).unwrap();
    assert_eq!(read(&format!("{EX5}/src/main.rs")), "mine");
    assert_eq!(read(&format!("{EX5}/src/bin/print_time.rs")), "ex5 bin");
    assert_eq!(read(&format!("{EX1}/README.md")), "ex1 sheet");
    // Never the checkout's solved copy, which the build could read.
    assert!(read(&format!("{EX1}/src/main.rs")).contains("never graded"));
    // A submitted step that needs a release that cannot be had.
    let partial = tree(
        "checkout-partial",
        &[(&format!("{EX5}/src/bin/print_time.rs"), "mine")],
    );
    let accepted = check(&partial, &root, &STEPS, &release).unwrap();
    let why = checkout(&root, &slot, &release, &accepted.placements).unwrap_err();
    assert!(why.contains("is not the released skeleton"), "{why}");
    for dir in [root, slot, theirs, partial] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// What the red team sent (issue 15): every one a refusal on one line
/// or a grade, never a hang, an internal error or a forged line.
#[test]
fn odd_uploads_are_refused_on_one_line_or_taken() {
    let (root, release) = workbook("odd");
    let main = format!("{EX1}/src/main.rs");
    // A file name that would forge report lines.
    let forged = "x\n\nex2_signal_exchange: 12 points\ntotal: 54 points";
    let dir = tree("odd-forged", &[(main.as_str(), "mine"), (forged, "x")]);
    let accepted = check(&dir, &root, &STEPS, &release).unwrap();
    let note = accepted.note.unwrap();
    assert_eq!(note.lines().count(), 1, "{note}");
    std::os::unix::fs::symlink("/etc/passwd", dir.join(EX1).join("src").join(forged)).unwrap();
    let refusal = taken(&dir, &root, &release, &STEPS).unwrap_err();
    assert_eq!(refusal.lines().count(), 1, "{refusal}");
    let _ = std::fs::remove_dir_all(dir);
    let dir = tree("odd-loose-forged", &[(&format!("{forged}.rs"), "x")]);
    let refusal = taken(&dir, &root, &release, &STEPS).unwrap_err();
    assert_eq!(refusal.lines().count(), 1, "{refusal}");
    let _ = std::fs::remove_dir_all(dir);

    // A FIFO in the grader's workbook, where the upload has a file of
    // the same (empty) size: compared without blocking.
    nix::unistd::mkfifo(
        &root.join("exercises").join(EX1).join("room.fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let dir = tree(
        "odd-fifo",
        &[(main.as_str(), "mine"), (&format!("{EX1}/room.fifo"), "")],
    );
    assert_eq!(taken(&dir, &root, &release, &STEPS), Ok(vec![main.clone()]));
    let _ = std::fs::remove_dir_all(dir);

    // Wrappers around a .git folder, and deeper than a few.
    let dir = tree(
        "odd-wrapped",
        &[(".git/HEAD", "ref"), (&format!("a/b/c/d/{main}"), "mine")],
    );
    assert_eq!(taken(&dir, &root, &release, &STEPS), Ok(vec![main.clone()]));
    let _ = std::fs::remove_dir_all(dir);
    // A module folder named target is a source.
    let module = format!("{EX1}/src/target/mod.rs");
    let dir = tree(
        "odd-target-module",
        &[(main.as_str(), "m"), (module.as_str(), "t")],
    );
    assert_eq!(
        taken(&dir, &root, &release, &STEPS),
        Ok(vec![main.clone(), module.clone()])
    );
    let _ = std::fs::remove_dir_all(dir);
    // A file named as a step does not make a step folder.
    let dir = tree("odd-step-file", &[(EX1, "x"), ("main.rs", "mine")]);
    assert_eq!(taken(&dir, &root, &release, &[EX1]), Ok(vec![main.clone()]));
    let _ = std::fs::remove_dir_all(dir);
    // Cargo's own files among the sources.
    let dir = tree(
        "odd-cargo-in-src",
        &[
            (main.as_str(), "m"),
            (&format!("{EX1}/src/rust-toolchain"), "nightly"),
        ],
    );
    let refusal = taken(&dir, &root, &release, &STEPS).unwrap_err();
    assert!(
        refusal.contains("a cargo file among the sources"),
        "{refusal}"
    );
    let _ = std::fs::remove_dir_all(dir);

    // A file where the release has a folder (ex5's src/bin): the
    // submission's layout wins, and nothing of the release is in the way.
    let slot = tree("odd-slot", &[]);
    let dir = tree("odd-bin-file", &[(&format!("{EX5}/src/bin"), "a file")]);
    let accepted = check(&dir, &root, &STEPS, &release).unwrap();
    checkout(&root, &slot, &release, &accepted.placements).unwrap();
    let bin = slot.join("exercises").join(EX5).join("src/bin");
    assert_eq!(std::fs::read_to_string(&bin).unwrap(), "a file");
    assert_eq!(
        std::fs::read_to_string(slot.join("exercises").join(EX5).join("src/main.rs")).unwrap(),
        "ex5 skeleton"
    );
    for dir in [root, slot, dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
