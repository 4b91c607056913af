//! The compression sweep: the Pareto front on hand-made points, the table and the plots of a
//! made-up result set, the grid flags, one-line errors, and two-point runs of `smartdeal sweep
//! sts` on four sentence pairs and of `smartdeal sweep mnist` on 20 digits (the default grids on
//! the whole test sets are documented commands, not tests: docs/sweep.md).

mod common;

use common::{fails, ok, p, read_json};
use smartdeal_net::plot::{svg, XAxis};
use smartdeal_net::sweep::{
    default_grid, pareto_front, Method, Point, PointResult, Settings, Sweep, JSON_FILE,
    MARKDOWN_FILE,
};
use std::path::{Path, PathBuf};

#[test]
fn pareto_front_keeps_the_points_nothing_beats_on_both_axes() {
    let xy = [
        (1.0, 0.50), // cheapest: optimal
        (2.0, 0.80), // optimal
        (2.0, 0.70), // same cost, lower score: dominated
        (3.0, 0.80), // same score, higher cost: dominated
        (4.0, 0.90), // optimal
        (4.0, 0.90), // an equal twin: optimal too
        (5.0, 0.85), // dominated by (4, 0.9)
        (0.5, f64::NAN),
    ];
    assert_eq!(
        pareto_front(&xy),
        [true, true, false, false, true, true, false, false]
    );
    assert!(pareto_front(&[]).is_empty());
    assert_eq!(pareto_front(&[(3.0, 0.1)]), [true]);
}

#[test]
fn default_grid_has_every_prune_ratio_and_three_exponent_widths() {
    let g = default_grid();
    assert_eq!(g.len(), 16);
    for r in [0.0, 0.25, 0.5, 0.75] {
        assert!(g.iter().filter(|p| p.prune_ratio == r).count() >= 3, "{r}");
    }
    for e in [2, 3, 4] {
        assert!(g.iter().any(|p| p.exp_bits == e), "{e}");
    }
    assert!(g.iter().all(|p| p.check().is_ok()));
    assert!(Point {
        method: Method::Plain,
        threshold: 1e-2,
        prune_ratio: 1.0,
        exp_bits: 3
    }
    .check()
    .is_err());
}

fn result(t: f64, r: f64, e: u32, score: f64, bits: f64, density: f64) -> PointResult {
    PointResult {
        point: Point {
            method: Method::Plain,
            threshold: t,
            prune_ratio: r,
            exp_bits: e,
        },
        score,
        bits_per_weight: bits,
        file_bytes: (bits * 1000.0 / 8.0) as u64,
        weights: 1000,
        row_density: density,
        weight_rel_error: Some(0.1),
        compress_seconds: 1.0,
        score_seconds: 2.0,
        pareto_bits: false,
        pareto_row_density: false,
    }
}

fn fake_sweep() -> Sweep {
    let mut s = Sweep::new(
        "sts",
        "STS-B Spearman",
        Settings {
            model: "m".into(),
            data: "d".into(),
            items: 10,
            calibration: 5,
            config: "tiny".into(),
            engine: "golden".into(),
            iters: 30,
            group_size: 32,
        },
    );
    s.float_score = Some(0.82);
    for r in [
        result(1e-2, 0.0, 3, 0.81, 4.6, 1.0),
        result(3e-2, 0.0, 3, 0.79, 3.5, 1.0),
        result(1e-2, 0.5, 3, 0.50, 2.5, 0.5),
        result(1e-2, 0.5, 2, 0.40, 2.6, 0.5),
        result(1e-2, 0.0, 4, 0.80, 5.0, 1.0),
    ] {
        s.record(r);
    }
    s
}

#[test]
fn table_is_sorted_by_bits_and_marks_the_front() {
    let s = fake_sweep();
    let bits: Vec<bool> = s.points.iter().map(|r| r.pareto_bits).collect();
    assert_eq!(bits, [true, true, true, false, false]);
    let dens: Vec<bool> = s.points.iter().map(|r| r.pareto_row_density).collect();
    assert_eq!(dens, [true, false, true, false, false]);
    let md = s.to_markdown();
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| plain | ")).collect();
    assert_eq!(rows.len(), 5, "{md}");
    assert!(
        rows[0].contains("| 2.500 |") && rows[0].contains("**0.5000**"),
        "{}",
        rows[0]
    );
    assert!(rows[0].ends_with("| bits, density |"), "{}", rows[0]);
    assert!(
        rows[1].contains("| 2.600 |") && rows[1].ends_with("|  |"),
        "{}",
        rows[1]
    );
    assert!(rows[4].contains("| 5.000 |"), "{}", rows[4]);
    assert!(md.contains("Float model: **0.8200**"), "{md}");
    // Recording a point again replaces it.
    let mut s2 = s.clone();
    s2.record(result(1e-2, 0.5, 2, 0.6, 2.6, 0.5));
    assert_eq!(s2.points.len(), 5);
    assert!(s2.find(&s2.points[3].point).unwrap().pareto_bits);
}

/// The text of every `<text>` element of an SVG.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].to_string())
        })
        .collect()
}

#[test]
fn plots_are_svg_with_axes_legend_and_front_labels() {
    let s = fake_sweep();
    for x in XAxis::ALL {
        let text = svg(&s, x).unwrap();
        assert!(text.trim_start().starts_with("<svg"), "{x:?}");
        assert!(text.trim_end().ends_with("</svg>"), "{x:?}");
        assert_eq!(
            text.matches("<text").count(),
            text.matches("</text>").count()
        );
        let t = texts(&text);
        let has = |needle: &str| t.iter().any(|l| l.contains(needle));
        assert!(has("STS-B Spearman"), "{t:?}");
        assert!(has("float model (0.8200)"), "{t:?}");
        assert!(has("plain: points, Pareto front"), "{t:?}");
        assert!(has("exp_bits 2") && has("exp_bits 4"), "{t:?}");
        match x {
            XAxis::BitsPerWeight => assert!(has("bits per weight") && has("3e-2 / 0 / 3")),
            XAxis::RowDensity => assert!(has("row density") && !has("3e-2 / 0 / 3")),
        }
    }
    // An empty sweep still draws (the first file is written before any point).
    let mut empty = s.clone();
    empty.points.clear();
    assert!(svg(&empty, XAxis::BitsPerWeight)
        .unwrap()
        .contains("</svg>"));
}

#[test]
fn write_puts_four_files_and_the_json_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = fake_sweep();
    let files = s.write(dir.path()).unwrap();
    assert_eq!(files.len(), 4);
    for f in &files {
        assert!(f.is_file(), "{}", f.display());
    }
    let back = Sweep::read(&dir.path().join(JSON_FILE)).unwrap();
    assert_eq!(back, s);
    assert!(back.compatible(&s));
    assert!(dir.path().join(MARKDOWN_FILE).is_file());
}

fn minilm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cache/minilm")
}

/// Four scored pairs and two calibration pairs in the STS-B format.
fn write_sts(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("pairs.csv");
    std::fs::write(
        &data,
        "g\tf\ty\t1\t5.0\tA man is playing a guitar.\tA man plays the guitar.\n\
         g\tf\ty\t2\t0.2\tA woman slices an onion.\tThe stock market fell today.\n\
         g\tf\ty\t3\t3.0\tKids are playing football.\tChildren play soccer outside.\n\
         g\tf\ty\t4\t1.0\tA dog runs on the beach.\tA cat sleeps on a sofa.\n",
    )
    .unwrap();
    let calib = dir.join("calib.csv");
    std::fs::write(
        &calib,
        "g\tf\ty\t1\t2.0\tA plane is taking off.\tTwo birds sit on a wire.\n",
    )
    .unwrap();
    (data, calib)
}

#[test]
fn sweep_sts_runs_two_points_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (data, calib) = write_sts(d);
    let out = d.join("out");
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "sweep",
            "sts",
            "--model-dir",
            p(&minilm()),
            "--data",
            p(&data),
            "--calib",
            p(&calib),
            "--out",
            p(&out),
            "--point",
            "1e-2:0:3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ok(&a, d)
    };
    let first = run(args(&["--point", "3e-2:0.5:2"]));
    assert!(
        first.contains("grid of 2 (2 measured, 0 reused)"),
        "{first}"
    );
    let r = read_json(&out.join("sweep.json"));
    let pts = r["points"].as_array().unwrap();
    assert_eq!(pts.len(), 2);
    assert_eq!(r["settings"]["items"], 4);
    assert_eq!(r["settings"]["calibration"], 2);
    assert!(r["float_score"].as_f64().unwrap() > 0.7);
    for q in pts {
        let bits = q["bits_per_weight"].as_f64().unwrap();
        assert!(bits > 1.0 && bits < 8.0, "{q}");
        let err = q["weight_rel_error"].as_f64().unwrap();
        assert!(err > 0.0 && err < 1.0, "{q}");
        assert_eq!(q["weights"], 6 * (4 * 384 * 384 + 2 * 384 * 1536));
    }
    assert!((pts[1]["row_density"].as_f64().unwrap() - 0.5).abs() < 0.01);
    assert!(pts[0]["score"].as_f64().unwrap() > 0.7, "{}", pts[0]);
    for f in ["sweep.md", "score_vs_bits.svg", "score_vs_row_density.svg"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // --resume measures only the new point: a sweep.json from before there were methods
    // (no "method" field) is read as plain, so only the aware point is measured; an --extra row
    // joins as a third method with its own front.
    let mut old = read_json(&out.join("sweep.json"));
    for q in old["points"].as_array_mut().unwrap() {
        q.as_object_mut().unwrap().remove("method");
    }
    std::fs::write(out.join("sweep.json"), old.to_string()).unwrap();
    let mut extra = pts[1].clone();
    extra["method"] = "finetuned".into();
    extra["score"] = 0.01.into();
    let extra_file = d.join("finetuned.json");
    std::fs::write(&extra_file, extra.to_string()).unwrap();
    let second = run(args(&[
        "--resume",
        "--methods",
        "plain,aware",
        "--extra",
        p(&extra_file),
    ]));
    assert!(
        second.contains("grid of 2 (1 measured, 1 reused)"),
        "{second}"
    );
    let r = read_json(&out.join("sweep.json"));
    let pts = r["points"].as_array().unwrap();
    let methods: Vec<&str> = pts.iter().map(|q| q["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["plain", "plain", "finetuned", "aware"]);
    // Each method has its own front: the fine-tuned row is worse than both plain points but
    // alone in its method, the aware point alone in its.
    assert!(pts[2]["pareto_bits"].as_bool().unwrap());
    assert!(pts[3]["pareto_bits"].as_bool().unwrap());
    assert!(pts[3]["score"].as_f64().unwrap() > 0.7, "{}", pts[3]);
    let plot = std::fs::read_to_string(out.join("score_vs_bits.svg")).unwrap();
    for m in ["plain", "aware", "finetuned"] {
        assert!(plot.contains(&format!("{m}: points, Pareto front")), "{m}");
    }
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(md.contains("| aware | 1e-2 | 0 | 3 |"), "{md}");
    fails(
        &["sweep", "sts", "--methods", "finetuned"],
        d,
        &["finetuned", "--extra"],
    );
}

#[test]
fn sweep_bad_grids_and_configs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (args, needles) in [
        (
            vec!["--point", "1e-2:0.5"],
            vec!["THRESHOLD:PRUNE_RATIO:EXP_BITS"],
        ),
        (vec!["--point", "1e-2:1.5:3"], vec!["prune ratio 1.5"]),
        (vec!["--point", "x:0:3"], vec!["threshold `x`"]),
        (vec!["--exp-bits", "5"], vec!["exp_bits 5"]),
        (vec!["--thresholds=-1"], vec!["threshold -1"]),
        (vec!["--dense"], vec!["dense"]),
        (vec!["--iters", "0"], vec!["--iters"]),
        (vec!["--model-dir", "nope"], vec!["nope", "setup.sh"]),
    ] {
        let mut a = vec!["sweep", "sts"];
        a.extend(args);
        fails(&a, d, &needles);
    }
}

#[test]
fn sweep_mnist_runs_two_points() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("cache/mnist");
    let out = d.join("out");
    let stdout = ok(
        &[
            "sweep",
            "mnist",
            "--weights",
            p(&cache.join("mnist.pth")),
            "--data",
            p(&cache.join("digits")),
            "--calib-per-digit",
            "2",
            "--limit",
            "20",
            "--point",
            "1e-2:0:3",
            "--point",
            "1e-2:0.75:3",
            "--out",
            p(&out),
        ],
        d,
    );
    assert!(
        stdout.contains("grid of 2 (2 measured, 0 reused)"),
        "{stdout}"
    );
    let r = read_json(&out.join("sweep.json"));
    assert_eq!(r["task"], "mnist");
    assert_eq!(r["settings"]["items"], 20);
    assert_eq!(r["settings"]["calibration"], 20);
    let pts = r["points"].as_array().unwrap();
    assert_eq!(
        pts[0]["weights"],
        32 * 9 + 64 * 32 * 9 + 128 * 3136 + 10 * 128
    );
    assert!(pts[0]["score"].as_f64().unwrap() >= 0.9, "{}", pts[0]);
    // Pruning 3 of the first convolution's 3 kernel rows leaves it all zero: every image gets
    // the same class.
    assert!(pts[1]["score"].as_f64().unwrap() <= 0.2, "{}", pts[1]);
    assert!(pts[1]["row_density"].as_f64().unwrap() < 0.3, "{}", pts[1]);
}
