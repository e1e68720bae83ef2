"""kubectl's JSONPath dialect (client-go util/jsonpath), checked against the examples of
kubectl's JSONPath reference page and the cases client-go's own tests pin down."""
from __future__ import annotations

import pytest

from kubenet_lab import jsonpath
from kubenet_lab.jsonpath import JSONPathError

# The input of https://kubernetes.io/docs/reference/kubectl/jsonpath/ (with client-go's "ready").
NODES = {
    "kind": "List",
    "items": [
        {"kind": "None",
         "metadata": {"name": "127.0.0.1", "labels": {"kubernetes.io/hostname": "127.0.0.1"}},
         "status": {"capacity": {"cpu": "4"}, "ready": True,
                    "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.1"}]}},
        {"kind": "None",
         "metadata": {"name": "127.0.0.2", "labels": {"kubernetes.io/hostname": "127.0.0.2"}},
         "status": {"capacity": {"cpu": "8"}, "ready": False,
                    "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.2"},
                                  {"type": "another", "address": "127.0.0.3"}]}},
    ],
    "users": [{"name": "myself", "user": {}},
              {"name": "e2e", "user": {"username": "admin", "password": "secret"}}],
}

CONTAINERS = {"apiVersion": "v1", "kind": "Pod",
              "spec": {"containers": [{"image": "busybox", "name": f"fake{i}"} for i in range(4)]}}
SIX = {"spec": {"containers": [{"name": f"fake{i}"} for i in range(6)]}}


def run(template, data, allow_missing=False):
    return jsonpath.parse(template).execute(data, allow_missing_keys=allow_missing)


@pytest.mark.parametrize("template, expected", [
    # the reference page's table
    ("kind is {.kind}", "kind is List"),
    ("{.kind}", "List"),
    ("{['kind']}", "List"),
    ("{..name}", "127.0.0.1 127.0.0.2 myself e2e"),
    ("{.items[*].metadata.name}", "127.0.0.1 127.0.0.2"),
    ("{.users[0].name}", "myself"),
    ("{.items[*]['metadata.name', 'status.capacity']}", '127.0.0.1 127.0.0.2 {"cpu":"4"} {"cpu":"8"}'),
    ('{.users[?(@.name=="e2e")].user.password}', "secret"),
    ("{range .items[*]}[{.metadata.name}, {.status.capacity}] {end}",
     '[127.0.0.1, {"cpu":"4"}] [127.0.0.2, {"cpu":"8"}] '),
    ("{range .items[*]}{.metadata.name}{'\\t'}{end}", "127.0.0.1\t127.0.0.2\t"),
    ("{.items[0].metadata.labels.kubernetes\\.io/hostname}", "127.0.0.1"),
    # client-go's TestKubernetes
    ("{range .items[*]}{.metadata.name}, {end}{.kind}", "127.0.0.1, 127.0.0.2, List"),
    ('{range .items[*]}{.metadata.name}{"\\t"}{end}', "127.0.0.1\t127.0.0.2\t"),
    ("{.items[*].status.addresses[*].address}", "127.0.0.1 127.0.0.2 127.0.0.3"),
    ("{range .items[*]}{range .status.addresses[*]}{.address}, {end}{end}", "127.0.0.1, 127.0.0.2, 127.0.0.3, "),
    ('{.items[?(@.metadata.labels.kubernetes\\.io/hostname=="127.0.0.1")].kind}', "None"),
    ("{.items[?(@..ready==true)].metadata.name}", "127.0.0.1"),
    # $ and @ are the current object, printed as compact JSON with sorted keys
    ("{$.kind}", "List"),
    ("{@.users[1].user}", '{"password":"secret","username":"admin"}'),
    ("{.items[-1].metadata.name}", "127.0.0.2"),
    ("{.items[0:2].status.capacity.cpu}", "4 8"),
    ("{...address}", "127.0.0.1 127.0.0.2 127.0.0.3"),
])
def test_the_documented_examples(template, expected):
    got = run(template, NODES)
    if template == "{..name}":  # client-go's map order is random; kubectl's docs list them so
        assert sorted(got.split()) == sorted(expected.split())
    else:
        assert got == expected


def test_whole_objects_and_the_current_object():
    assert run("{@}", [1, 2, 3]) == "[1,2,3]"
    assert run("{$}", {"b": 1, "a": "x"}) == '{"a":"x","b":1}'
    assert run("{..}", [1, 2, 3]) == "[1,2,3]"
    assert run("hello jsonpath", None) == "hello jsonpath"
    assert run('{"{"}', None) == "{"
    assert run("{[1,3,4]}", [0, 1, 2, 3, 4]) == "1 3 4"
    assert run("{[?(@<5)]}", [2, 6, 3, 7]) == "2 3"


@pytest.mark.parametrize("template, expected", [
    ("{.spec.containers[0].name}", "fake0"),
    ("{.spec.containers[0:0].name}", ""),
    ("{.spec.containers[0:-1].name}", "fake0 fake1 fake2"),
    ("{.spec.containers[-1].name}", "fake3"),
    ("{.spec.containers[-1:].name}", "fake3"),
    ("{.spec.containers[-2].name}", "fake2"),
    ("{.spec.containers[-2:].name}", "fake2 fake3"),
    ("{.spec.containers[-4].name}", "fake0"),
    ("{.spec.containers[-4:].name}", "fake0 fake1 fake2 fake3"),
    ("{.spec.containers[5:5].name}", ""),
    ("{.spec.containers[-5:-5].name}", ""),
    ("{.spec.containers[:2].name}", "fake0 fake1"),
    ("{.spec.containers[::2].name}", "fake0 fake2"),
    ("{.spec.containers[1::2].name}", "fake1 fake3"),
])
def test_slices_and_negative_indices(template, expected):
    assert run(template, CONTAINERS) == expected


@pytest.mark.parametrize("template", [
    "{.spec.containers[-1:0].name}", "{.spec.containers[-5].name}", "{.spec.containers[3:1].name}",
    "{.spec.containers[-1:-2].name}", "{.spec.containers[4].name}",
])
def test_out_of_range_indices_are_errors_even_with_missing_keys_allowed(template):
    with pytest.raises(JSONPathError):
        run(template, CONTAINERS, allow_missing=True)


@pytest.mark.parametrize("template, expected", [
    ("{.spec.containers[0:].name}", "fake0 fake1 fake2 fake3 fake4 fake5"),
    ("{.spec.containers[0:6:].name}", "fake0 fake1 fake2 fake3 fake4 fake5"),
    ("{.spec.containers[1:4:2].name}", "fake1 fake3"),
    ("{.spec.containers[1:4:4].name}", "fake1"),
    ("{.spec.containers[0:6:5].name}", "fake0 fake5"),
])
def test_steps(template, expected):
    assert run(template, SIX) == expected
    with pytest.raises(JSONPathError, match="step must be > 0"):
        run("{.spec.containers[0:6:0].name}", SIX)


def test_values_print_as_go_prints_them():
    data = {"bools": [True, False], "ints": [1, 2, 3, 4], "floats": [1.0, 2.2, 3.3, 4.0],
            "strings": ["one", "two"], "mixed": [True, "one", 1, 1.1], "nothing": None,
            "maps": [{"name": "one", "value": 1}, {"name": "<two>", "value": 2.02}]}
    assert run("{.bools}", data) == "[true,false]"
    assert run("{.bools[-1]}", data) == "false"
    assert run("{.ints[:4:2]}", data) == "1 3"
    assert run("{.floats}", data) == "[1,2.2,3.3,4]"
    assert run("{.floats[0:2]}", data) == "1 2.2"
    assert run("{.strings}", data) == '["one","two"]'
    assert run("{.mixed}", data) == '[true,"one",1,1.1]'
    assert run("{.maps[0]}", data) == '{"name":"one","value":1}'
    assert run("{.maps[1]}", data) == '{"name":"\\u003ctwo\\u003e","value":2.02}'  # Go escapes HTML
    assert run("{.nothing}", data) == "<nil>"
    assert jsonpath.go_float(1e6) == "1e+06" and jsonpath.go_float(123456.0) == "123456"


def test_missing_keys_give_nothing_when_allowed_and_an_error_otherwise():
    assert run("{.hello}", NODES, allow_missing=True) == ""
    assert run("before-{.hello}after", NODES, allow_missing=True) == "before-after"
    with pytest.raises(JSONPathError, match="^hello is not found$"):
        run("{.hello}", NODES)
    annotated = {"items": [{"metadata": {"name": "pod1", "annotations": {"color": "blue"}}},
                           {"metadata": {"name": "pod2"}},
                           {"metadata": {"name": "pod4", "annotations": {"color": "blue"}}}]}
    template = '{.items[?(@.metadata.annotations.color=="blue")].metadata.name}'
    assert run(template, annotated, allow_missing=True) == "pod1 pod4"
    with pytest.raises(JSONPathError):
        run(template, annotated)


def test_filters():
    points = [{"id": "i1", "x": 4, "y": -5}, {"id": "i2", "x": -2, "y": -5, "z": 1},
              {"id": "i3", "x": 8, "y": 3}, {"id": "i5", "x": 0, "y": 2, "z": 1}]
    assert run("{[?(@.z)].id}", points) == "i2 i5"
    assert run("{[0]['id']}", points) == "i1"
    assert run("{[?(@.x>=0)].id}", points) == "i1 i3 i5"
    assert run("{[?(@.x < 0)].id}", points) == "i2"
    assert run("{[?(@.id!='i1')].id}", points) == "i2 i3 i5"
    ports = {"spec": {"ports": [{"name": "http", "port": 80, "nodePort": 30080},
                                {"name": "udp", "port": 8081, "nodePort": 30000}]}}
    assert run('{.spec.ports[?(@.name=="http")].nodePort}', ports) == "30080"
    assert run("{.spec.ports[?(@.port==8081)].name}", ports) == "udp"
    with pytest.raises(JSONPathError, match="incompatible types for comparison"):
        run('{.spec.ports[?(@.port=="80")].name}', ports)
    running = {"items": [{"metadata": {"name": f"pod{i}"}, "status": {"phase": "Running"}} for i in (1, 2)]
               + [{"resourceVersion": ""}]}
    assert run('{range .items[?(.status.phase=="Running")]}{.metadata.name}{" is Running\\n"}{end}',
               running, allow_missing=True) == "pod1 is Running\npod2 is Running\n"


def test_nested_and_empty_ranges():
    data = {"items": [
        {"metadata": {"name": "pod1"}, "spec": {"containers": [
            {"name": "foo", "another": [{"name": "value1"}, {"name": "value2"}]},
            {"name": "bar", "another": [{"name": "value1"}, {"name": "value2"}]}]}},
        {"metadata": {"name": "pod2"}, "spec": {"containers": [
            {"name": "baz", "another": [{"name": "value1"}, {"name": "value2"}]}]}}]}
    assert run('{range .items[*]}{.metadata.name}{":"}{range @.spec.containers[*]}{.name}{","}{end}{"+"}{end}',
               data) == "pod1:foo,bar,+pod2:baz,+"
    assert run('{range .items[*]}{.metadata.name}{"~"}{range @.spec.containers[*]}{.name}{":"}'
               '{range @.another[*]}{.name}{","}{end}{"+"}{end}{"#"}{end}', data) == \
        "pod1~foo:value1,value2,+bar:value1,value2,+#pod2~baz:value1,value2,+#"
    assert run('{range .items[*]}{.metadata.name}{"\\t"}{range @.spec.containers[*]}{.name}{" "}{end}'
               '{"\\t"}{range @.spec.containers[*]}{.name}{" "}{end}{"\\n"}{end}', data) == \
        "pod1\tfoo bar \tfoo bar \npod2\tbaz \tbaz \n"
    empty = {"items": []}
    assert run("{range .items[*]}{.metadata.name}{end}", empty, allow_missing=True) == ""
    assert run('{range .items[*]}{.metadata.name}{":"}{range @.spec.containers[*]}{.name}{","}{end}{"+"}{end}',
               empty, allow_missing=True) == ""


@pytest.mark.parametrize("template, message", [
    ("{.items[", "unterminated array"),
    ("{.kind", "unclosed action"),
    ("{#}", "unrecognized character in action: U+0023 '#'"),
    ("{....x}", "invalid multiple recursive descent"),
    ("{[?(@.x==1]}", "unterminated filter"),
    ('{"abc}', "unterminated quoted string"),
    ("{[x]}", "invalid array index x"),
    ("{[-:2]}", "array index - is not a number"),
    ("{-}", "cannot parse number -"),
    ('{"\\q"}', 'unquote string "\\q" error invalid syntax'),
])
def test_templates_that_do_not_parse(template, message):
    with pytest.raises(JSONPathError) as e:
        jsonpath.parse(template)
    assert str(e.value) == message


@pytest.mark.parametrize("template, message", [
    ("{hello}", "unrecognized identifier hello"),
    ("{.items[5]}", "array index out of bounds: index 5, length 2"),
    ("{.kind[0]}", "string is not array or slice"),
    ("{.users[?(@.name<>1)]}", "unrecognized filter operator <>"),
    ("{range .items[*]}{@}{end}{end}", "not in range, nothing to end"),
])
def test_templates_that_fail_on_the_data(template, message):
    with pytest.raises(JSONPathError) as e:
        run(template, NODES, allow_missing=True)
    assert str(e.value) == message


def test_jsonpath_as_json():
    assert jsonpath.parse("{.items[*].metadata.name}").execute_as_json(NODES) == \
        '[\n    "127.0.0.1",\n    "127.0.0.2"\n]\n'


def test_custom_columns_specs_are_relaxed_as_kubectl_relaxes_them():
    for spec in ("metadata.name", ".metadata.name", "{metadata.name}", "{.metadata.name}"):
        assert jsonpath.relaxed(spec) == "{.metadata.name}"
    cols = jsonpath.custom_columns("NAME:.metadata.name,CPU:status.capacity,ADDR:.status.addresses[*].address,"
                                   "X:.nothing,LABELS:.metadata.labels")
    assert [c.header for c in cols] == ["NAME", "CPU", "ADDR", "X", "LABELS"]
    item = NODES["items"][1]
    assert [jsonpath.column_value(c, item) for c in cols] == [
        "127.0.0.2", "map[cpu:8]", "127.0.0.2,127.0.0.3", "<none>", "map[kubernetes.io/hostname:127.0.0.2]"]
    with pytest.raises(JSONPathError, match="expected <header>:<json-path-expr>"):
        jsonpath.custom_columns("NAME")
    with pytest.raises(JSONPathError, match="no custom columns given"):
        jsonpath.custom_columns("")
