use super::*;
use serde_json::json;

#[test]
fn parses_multiple_documents_with_positions_and_skips_empty_ones() {
    let text =
        "# leading comment\napiVersion: v1\nkind: A\n---\n---\n# only a comment\n---\nkind: B\n";
    let docs = parse_documents("f.yaml", text).expect("parses");
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].value, json!({"apiVersion": "v1", "kind": "A"}));
    assert_eq!((docs[0].line, docs[0].column), (2, 1));
    assert_eq!(docs[1].value, json!({"kind": "B"}));
    assert_eq!(docs[1].line, 8);
}

#[test]
fn json_is_yaml() {
    let docs = parse_documents("f.json", "{\"kind\": \"A\", \"n\": [1, 2]}").expect("parses");
    assert_eq!(docs[0].value, json!({"kind": "A", "n": [1, 2]}));
}

#[test]
fn errors_name_file_line_and_column() {
    let err = parse_documents("bad.yaml", "a: 1\nb: [unclosed\nc: 3\n").expect_err("invalid");
    assert_eq!(err.file, "bad.yaml");
    assert!(err.line >= 2, "{err}");
    assert!(err.to_string().starts_with("bad.yaml:"), "{err}");
}

#[test]
fn billion_laughs_is_refused() {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (i, prev) in ('b'..='j').zip('a'..='i') {
        text.push_str(&format!(
            "{i}: &{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    let err = parse_documents("laughs.yaml", &text).expect_err("bounded");
    assert_eq!(err.file, "laughs.yaml");
}

const STACK: usize = 2 * 1024 * 1024;

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    // Run on a thread with the default 2 MiB stack, as the binaries' workers have.
    let handle = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(|| {
            let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
            parse_documents("deep.yaml", &text).map(|_| ())
        })
        .expect("thread");
    let result = handle.join().expect("no stack overflow");
    assert!(result.is_err());
    let block = (0..10_000).fold(String::new(), |mut s, i| {
        s.push_str(&" ".repeat(i));
        s.push_str("- \n");
        s
    });
    let result = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || parse_documents("deep.yaml", &block).map(|_| ()))
        .expect("thread")
        .join()
        .expect("no stack overflow");
    assert!(result.is_err());
}

#[test]
fn output_is_deterministic_and_reparses() {
    let v = json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"b": "1", "a": "true", "c": "x\ny\n", "d": ""}, "n": 3, "e": {}, "l": []});
    let text = to_yaml(&v);
    assert_eq!(text, to_yaml(&v));
    let back = parse_documents("t.yaml", &text).expect("reparses");
    assert_eq!(back[0].value, v, "{text}");
    assert!(
        text.find("apiVersion").expect("key") < text.find("kind").expect("key"),
        "{text}"
    );
}
