"""Splits each rendered overlay into built-in objects and custom resources,
checks references between objects, and prints one line per file to
validate: `builtin FILE` or `crd FILE SCHEMA`.
Arguments: RENDERED_DIR UNPINNED_OK KIND=SCHEMA...
"""

import collections
import os
import sys

import yaml

rendered, unpinned_ok = sys.argv[1], set(sys.argv[2].split())
crd_schemas = dict(arg.split("=", 1) for arg in sys.argv[3:])
problems = []

def builtin(api_version):
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")

def pod_spec(obj):
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return obj["spec"]["template"]["spec"]
    return None

def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

for path in sorted(os.listdir(rendered)):
    overlay = path.removesuffix(".yaml")
    objs = [d for d in yaml.safe_load_all(open(os.path.join(rendered, path))) if d]
    def problem(obj, text, overlay=overlay):
        problems.append(f"{overlay}: {obj['kind']}/{obj['metadata']['name']}: {text}")
    names = collections.defaultdict(set)
    for o in objs:
        names[o["kind"]].add((o["metadata"].get("namespace"), o["metadata"]["name"]))
    workloads = [o for o in objs if pod_spec(o) is not None]
    def pods_selected(ns, selector, workloads=workloads):
        return [w for w in workloads if w["metadata"].get("namespace") == ns
                and matches(selector, w["spec"]["template"]["metadata"].get("labels", {}))]
    def named_ports(w):
        return {p["name"] for c in pod_spec(w)["containers"] for p in c.get("ports", []) if "name" in p}

    for o in objs:
        ns = o["metadata"].get("namespace")
        if o["kind"] != "Namespace" and ns is None:
            problem(o, "has no namespace")
        spec = pod_spec(o)
        if spec is not None:
            if not spec.get("securityContext", {}).get("runAsNonRoot"):
                problem(o, "pod securityContext lacks runAsNonRoot: true")
            for c in spec["containers"]:
                ports = {p["name"] for p in c.get("ports", []) if "name" in p}
                for ref in c.get("envFrom", []):
                    for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                        if key in ref and (ns, ref[key]["name"]) not in names[kind]:
                            problem(o, f"container {c['name']} reads {kind} {ref[key]['name']}, which is not rendered")
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    p = c.get(probe)
                    if p is None:
                        if probe != "startupProbe":
                            problem(o, f"container {c['name']} has no {probe}")
                        continue
                    port = (p.get("httpGet") or p.get("tcpSocket") or p.get("grpc") or {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        problem(o, f"container {c['name']} {probe} uses port {port!r}, which it does not name")
                res = c.get("resources", {})
                for part in ("requests", "limits"):
                    for r in ("cpu", "memory"):
                        if r not in res.get(part, {}):
                            problem(o, f"container {c['name']} has no {part}.{r}")
                sc = c.get("securityContext", {})
                if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
                        and "ALL" in sc.get("capabilities", {}).get("drop", [])):
                    problem(o, f"container {c['name']} securityContext must set readOnlyRootFilesystem, "
                               "allowPrivilegeEscalation: false and drop ALL capabilities")
                image = c["image"]
                last = image.rpartition("/")[2]
                tag = last.rpartition(":")[2] if ":" in last else ""
                if "@" not in last and (not tag or (tag == "latest" and overlay not in unpinned_ok)):
                    problem(o, f"container {c['name']} image {image} is not pinned to a version")
        if o["kind"] == "Service":
            selected = pods_selected(ns, o["spec"].get("selector"))
            if not selected:
                problem(o, "selects no pods")
            for p in o["spec"].get("ports", []):
                target = p.get("targetPort")
                if isinstance(target, str) and not all(target in named_ports(w) for w in selected):
                    problem(o, f"targetPort {target!r} is not a named port of the pods it selects")
        if o["kind"] == "PodDisruptionBudget" and not pods_selected(ns, o["spec"]["selector"].get("matchLabels")):
            problem(o, "selects no pods")
        if o["kind"] == "StatefulSet" and (ns, o["spec"]["serviceName"]) not in names["Service"]:
            problem(o, f"serviceName {o['spec']['serviceName']} is not a rendered Service")
        if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject"):
            ref = o["spec"]["scaleTargetRef"]
            target = [w for w in workloads if w["metadata"].get("namespace") == ns
                      and w["kind"] == ref.get("kind", "Deployment") and w["metadata"]["name"] == ref["name"]]
            if not target:
                problem(o, f"scales {ref['name']}, which is not rendered")
            elif "replicas" in target[0]["spec"]:
                problem(o, f"scales {ref['name']}, which also sets spec.replicas (each apply would reset the autoscaler)")

    kinds = collections.Counter(o["kind"] for o in objs)
    print(f"info {overlay}: {len(objs)} objects: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    plain = [o for o in objs if builtin(o["apiVersion"])]
    out = os.path.join(rendered, "split")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{overlay}.builtin.yaml"), "w") as f:
        yaml.safe_dump_all(plain, f, sort_keys=False)
    print(f"builtin {overlay} {len(plain)} {f.name}")
    for o in objs:
        if builtin(o["apiVersion"]):
            continue
        schema = crd_schemas.get(f"{o['apiVersion']} {o['kind']}")
        if schema is None:
            problem(o, f"custom resource {o['apiVersion']} {o['kind']} has no schema: add one to k8s/schemas and to crd_schemas in scripts/check-deploy")
            continue
        crd_file = os.path.join(out, f"{overlay}.{o['kind']}.{o['metadata']['name']}.yaml")
        with open(crd_file, "w") as f:
            yaml.safe_dump(o, f, sort_keys=False)
        print(f"crd {overlay} {o['apiVersion']}/{o['kind']}/{o['metadata']['name']} {crd_file} {schema}")

for p in problems:
    print(f"problem {p}")
