"""The fake lemond's job engine: step graphs, `${ref}` params, `when`/`branch` conditions and `on_fail`, as
Lemonade's docs/dev/job-system.md and job-expression-language.md describe them (jobs/job_manager.cpp)."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.fake_jobexpr import JobError, check_syntax, eval_condition, resolve_path, resolve_refs

MAX_JOBS = 50
Op = Callable[[dict[str, Any], threading.Event], Any]


def validate_steps(steps: list[dict[str, Any]], ops: set[str]) -> str:
    """The creation-time graph check of jobs/job_graph.h: ids, known ops, forward-only targets, syntax."""
    if not steps:
        return "a job needs at least one step"
    index: dict[str, int] = {}
    for i, s in enumerate(steps):
        sid = s["id"]
        if not sid:
            return f"step {i} has an empty id"
        if sid == "inputs":
            return "step id 'inputs' is reserved"
        if "." in sid:
            return f"step id '{sid}' must not contain '.'"
        if sid in index:
            return f"duplicate step id '{sid}'"
        index[sid] = i

    def forward(i: int, target: str, field: str) -> str:
        if target not in index:
            return f"{field} target '{target}' in step '{steps[i]['id']}' is not a known step id"
        if index[target] <= i:
            return f"{field} target '{target}' in step '{steps[i]['id']}' must reference a later step (no loops)"
        return ""

    for i, s in enumerate(steps):
        if not s["op"]:
            return f"step '{s['id']}' has no op"
        if s["op"] not in ops:
            return f"step '{s['id']}' uses unknown op '{s['op']}'"
        if err := check_syntax(s["when"]):
            return f"step '{s['id']}' when: {err}"
        if s["on_done"] and (err := forward(i, s["on_done"], "on_done")):
            return err
        for case in s["branch"]:
            if not case["goto"]:
                return f"a branch case in step '{s['id']}' has no goto"
            if err := forward(i, case["goto"], "branch goto"):
                return err
            if err := check_syntax(case["when"]):
                return f"step '{s['id']}' branch when: {err}"
        if s["on_fail"] not in ("abort", "continue") and (err := forward(i, s["on_fail"], "on_fail")):
            return err
    return ""


def step_from_json(j: dict[str, Any]) -> dict[str, Any]:
    """A StepRecord with lemond's defaults (missing fields are empty; on_fail defaults to abort)."""
    return {"id": str(j.get("id", "")), "op": str(j.get("op", "")),
            "params": j["params"] if isinstance(j.get("params"), dict) else {},
            "when": str(j.get("when", "")), "extract": j["extract"] if isinstance(j.get("extract"), dict) else {},
            "on_done": str(j.get("on_done", "")),
            "branch": [{"when": str(c.get("when", "")), "goto": str(c.get("goto", ""))}
                       for c in j.get("branch", []) if isinstance(c, dict)] if isinstance(j.get("branch"), list) else [],
            "on_fail": str(j.get("on_fail", "abort")), "status": "pending", "failure_handled": False,
            "duration_ms": 0, "error": "", "output": {}}


def step_to_json(s: dict[str, Any]) -> dict[str, Any]:
    out = {"id": s["id"], "op": s["op"], "params": s["params"], "status": s["status"], "duration_ms": s["duration_ms"]}
    for key, absent in (("when", ""), ("extract", {}), ("on_done", ""), ("branch", []), ("on_fail", "abort"),
                        ("failure_handled", False), ("error", ""), ("output", {})):
        if s[key] != absent:
            out[key] = s[key]
    return out


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class JobManager:
    """Jobs run one at a time on a worker thread; exclusive ops hold `exclusive` (the model slot) for the job."""

    def __init__(self, ops: dict[str, tuple[Op, bool]], store: Path, exclusive: threading.RLock) -> None:
        self.ops, self.store, self.exclusive = ops, store, exclusive
        self.jobs: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []  # newest first, as lemond lists them
        self.queue: list[str] = []
        self.counter = 0
        self.lock = threading.Condition()
        self.flags: dict[str, dict[str, threading.Event]] = {}
        self._load()
        threading.Thread(target=self._worker, name="fake-lemond-jobs", daemon=True).start()

    # --- persistence (config_dir/jobs.json, {"version":1,"jobs":[...]}) ---------------------------------
    def _load(self) -> None:
        try:
            doc = json.loads(self.store.read_text())
        except (OSError, ValueError):
            return
        for j in doc.get("jobs", []):
            if j.get("deleted") or not j.get("id"):
                continue
            if j.get("status") in ("running", "queued"):
                j["status"], j["error"] = "interrupted", "server restarted while the job was active"
            j["steps"] = [{**step_from_json(s), **{k: s[k] for k in s if k in ("status", "duration_ms", "error",
                          "output", "failure_handled")}} for s in j.get("steps", [])]
            self.jobs[j["id"]] = j
            self.order.append(j["id"])
            self.counter = max(self.counter, int(j["id"].rsplit("-", 1)[1]))

    def _persist(self) -> None:
        doc = {"version": 1, "jobs": [self._to_json(self.jobs[i]) for i in self.order]}
        tmp = self.store.with_name(self.store.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, self.store)

    @staticmethod
    def _to_json(job: dict[str, Any]) -> dict[str, Any]:
        out = {k: job[k] for k in ("id", "name", "status", "inputs", "context")}
        out.update(steps=[step_to_json(s) for s in job["steps"]], cursor=job["cursor"], created_at=job["created_at"])
        out.update({k: job[k] for k in ("started_at", "finished_at", "summary", "error") if job.get(k)})
        return out

    # --- API -------------------------------------------------------------------------------------------
    def create(self, body: Any) -> str:
        if not isinstance(body, dict):
            raise JobError(400, "job body must be a JSON object")
        raw = body["definition"]["steps"] if isinstance(body.get("definition"), dict) and \
            "steps" in body["definition"] else body.get("steps", [])
        steps = [step_from_json(s if isinstance(s, dict) else {}) for s in raw] if isinstance(raw, list) else []
        if err := validate_steps(steps, set(self.ops)):
            raise JobError(400, err)
        with self.lock:
            live = [i for i in self.order if self.jobs[i]["status"] not in ("completed", "failed")]
            if len(live) >= MAX_JOBS:
                raise JobError(429, f"job limit ({MAX_JOBS}) reached and every existing job is still active or "
                                    "resumable; delete a job first")
            self.counter += 1
            jid = f"job-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{self.counter:06d}"
            inputs = body.get("inputs") if body.get("inputs") is not None else {}
            self.jobs[jid] = {"id": jid, "name": str(body.get("name", "")), "status": "queued", "inputs": inputs,
                              "context": {"inputs": inputs}, "steps": steps, "cursor": steps[0]["id"],
                              "created_at": _now(), "started_at": "", "finished_at": "", "summary": "", "error": ""}
            self.order.insert(0, jid)
            while len(self.order) > MAX_JOBS:
                victim = next(i for i in reversed(self.order) if self.jobs[i]["status"] in ("completed", "failed"))
                self.order.remove(victim)
                del self.jobs[victim]
            self.queue.append(jid)
            self._persist()
            self.lock.notify_all()
        return jid

    def list(self) -> list[dict[str, Any]]:
        with self.lock:
            out = []
            for jid in self.order:
                job = self.jobs[jid]
                done = sum(1 for s in job["steps"] if s["status"] in ("completed", "skipped")
                           or (s["status"] == "failed" and s["failure_handled"]))
                summary = {"id": jid, "name": job["name"], "status": job["status"], "created_at": job["created_at"],
                           "progress": {"cursor": job["cursor"], "completed": done, "step_count": len(job["steps"])}}
                summary.update({k: job[k] for k in ("finished_at", "summary", "error") if job.get(k)})
                out.append(summary)
            return out

    def get(self, jid: str) -> dict[str, Any] | None:
        with self.lock:
            return json.loads(json.dumps(self._to_json(self.jobs[jid]))) if jid in self.jobs else None

    def control(self, jid: str, action: str) -> bool:
        """pause / interrupt / resume / delete; False when the job is unknown or not in a state for it."""
        with self.lock:
            job = self.jobs.get(jid)
            if job is None:
                return False
            flags = self.flags.setdefault(jid, {k: threading.Event() for k in ("pause", "interrupt", "cancel")})
            status = job["status"]
            if action in ("pause", "interrupt") and status == "queued":
                self.queue.remove(jid)
                job["status"] = "paused" if action == "pause" else "interrupted"
            elif action in ("pause", "interrupt") and status == "running":
                flags[action].set()
                if action == "interrupt":
                    flags["cancel"].set()
            elif action == "resume" and status in ("paused", "interrupted"):
                for flag in flags.values():
                    flag.clear()
                job["status"], job["error"] = "queued", ""
                self.queue.append(jid)
                self.lock.notify_all()
            elif action == "delete":
                if status == "running":
                    flags["interrupt"].set()
                    flags["cancel"].set()
                self.order.remove(jid)
                del self.jobs[jid]
                if jid in self.queue:
                    self.queue.remove(jid)
            else:
                return False
            self._persist()
            return True

    # --- execution -------------------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            with self.lock:
                while not self.queue:
                    self.lock.wait()
                jid = self.queue.pop(0)
                job = self.jobs[jid]
                job["status"] = "running"
                job["started_at"] = job["started_at"] or _now()
                flags = self.flags.setdefault(jid, {k: threading.Event() for k in ("pause", "interrupt", "cancel")})
                exclusive = any(self.ops[s["op"]][1] for s in job["steps"] if s["op"] in self.ops)
                self._persist()
            if exclusive:
                with self.exclusive:
                    self._execute(job, flags)
            else:
                self._execute(job, flags)

    def _execute(self, job: dict[str, Any], flags: dict[str, threading.Event]) -> None:
        steps = {s["id"]: s for s in job["steps"]}
        ids = [s["id"] for s in job["steps"]]

        def next_in_list(sid: str) -> str:
            i = ids.index(sid)
            return ids[i + 1] if i + 1 < len(ids) else ""

        def finish(status: str, error: str = "") -> None:
            job["status"], job["error"] = status, error or job["error"]
            if status in ("completed", "failed"):
                job["finished_at"] = _now()
            self._persist()

        while True:
            with self.lock:
                if job["id"] not in self.jobs:
                    return
                if flags["interrupt"].is_set():
                    return finish("interrupted")
                if flags["pause"].is_set():
                    return finish("paused")
                if not job["cursor"]:
                    for s in job["steps"]:
                        s["status"] = "skipped" if s["status"] == "pending" else s["status"]
                    return finish("completed")
                step = steps[job["cursor"]]
                try:
                    if not eval_condition(step["when"], job["context"]):
                        step["status"], job["cursor"] = "skipped", next_in_list(step["id"])
                        self._persist()
                        continue
                    params = resolve_refs(step["params"], job["context"])
                except JobError as err:
                    step["status"], step["error"] = "failed", str(err)
                    return finish("failed", str(err))
                step["status"] = "running"
                flags["cancel"].clear()
                self._persist()
            began = time.monotonic()
            try:
                output, error = self.ops[step["op"]][0](params, flags["cancel"]), ""
            except Exception as err:  # noqa: BLE001 - any op failure is a step failure, as in lemond
                output, error = None, str(err)
            with self.lock:
                step["duration_ms"] = int((time.monotonic() - began) * 1000)
                if flags["interrupt"].is_set():
                    step["status"], step["error"] = "pending", ""
                    return finish("interrupted")
                if not error:
                    step["output"] = output
                    job["context"][step["id"]] = output
                    try:
                        for key, path in step["extract"].items():
                            job["context"][key] = resolve_path(str(path), output)
                        target = next((c["goto"] for c in step["branch"] if eval_condition(c["when"], job["context"])),
                                      step["on_done"] or next_in_list(step["id"]))
                    except JobError as err:
                        step["status"], step["error"] = "failed", str(err)
                        return finish("failed", str(err))
                    step["status"], job["cursor"] = "completed", target
                else:
                    step["status"], step["error"] = "failed", error
                    if step["on_fail"] == "abort":
                        return finish("failed", error)
                    step["failure_handled"] = True
                    job["cursor"] = next_in_list(step["id"]) if step["on_fail"] == "continue" else step["on_fail"]
                self._persist()
