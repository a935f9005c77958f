"""``conveyor ci init``: a CI workflow file for GitHub Actions or GitLab CI, written for this workspace.

The file is text with comments (so it is written from templates, not dumped from a mapping).
What goes in it depends on the workspace, read once (:class:`_Facts`):

- the remote CI can see (one in the committed ``.conveyor/config``): ``run --pull`` restores
  data and outputs and reuses the run cache; its backend's credentials come from CI secrets;
- a ``deploy:`` section: a push to the main branch delivers (``conveyor deliver``);
- check stages, plots, remotes, a skops model: the extras of conveyor to install;
- ``requirements.txt``, ``pyproject.toml``/``setup.py``: how to install the project itself.

A pull request never delivers: it runs the pipeline (check stages are the gates) and gets the
report; delivery is for what was merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import UsageError

if TYPE_CHECKING:
    from conveyor.workspace import Workspace

PROVIDERS = ("github", "gitlab")
PATHS = {"github": ".github/workflows/conveyor.yml", "gitlab": ".gitlab-ci.yml"}
NAMES = {"github": "GitHub Actions", "gitlab": "GitLab CI"}
REPORT = "report.md"
PLOTS = "report_plots"  # where `conveyor report -o report.md` puts the plot images

# the environment variables each fsspec backend reads its credentials from, by URL scheme
_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    "az": ("AZURE_STORAGE_CONNECTION_STRING",),
    "abfs": ("AZURE_STORAGE_CONNECTION_STRING",),
}
_EXTRAS = {"s3": "s3", "gs": "gs", "gcs": "gs", "az": "azure", "abfs": "azure", "ssh": "ssh", "sftp": "ssh"}


@dataclass(frozen=True)
class Workflow:
    """A CI workflow file ``conveyor ci init`` wrote: where, for which provider, the CI secrets
    (or GitLab CI/CD variables) it reads, and what is left to do by hand."""

    provider: str
    path: Path
    secrets: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def init_workflow(
    provider: str,
    *,
    force: bool = False,
    branch: str = "main",
    python: str = "3.11",
    workspace: Workspace | None = None,
) -> Workflow:
    """Write the CI workflow of ``provider`` ("github": ``.github/workflows/conveyor.yml``,
    "gitlab": ``.gitlab-ci.yml``) at the workspace's root: on every pull request and every push
    to ``branch``, restore from the remote, run the pipeline (check stages are the gates), write
    ``conveyor report --md`` and post it on the pull request; a push to ``branch`` also delivers
    when conveyor.yaml has a ``deploy:`` section. An existing file is kept unless ``force``."""
    from conveyor import _fs
    from conveyor.workspace import Workspace

    provider = _check_provider(provider)
    if not branch.strip() or any(c in branch for c in "\"'\n\\$` "):
        raise UsageError(f"bad branch name {branch!r}", hint="give the branch pushes deliver from, such as main")
    if not python.replace(".", "").isdigit():
        raise UsageError(f"bad Python version {python!r}", hint="give a version such as 3.11")
    ws = workspace or Workspace.find()
    path = ws.root / PATHS[provider]
    if path.exists() and not force:
        raise UsageError(
            f"{PATHS[provider]} already exists",
            hint=f"edit it by hand, or replace it with 'conveyor ci init {provider} --force'",
        )
    facts = _Facts.read(ws, branch=branch, python=python)
    text = render_workflow(provider, facts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _fs.atomic_write_text(path, text)
    except OSError as exc:
        from conveyor.errors import storage_error

        raise storage_error(exc, path, "write the workflow") from None
    return Workflow(provider, path, facts.secrets(provider), tuple(facts.notes))


def _check_provider(provider: str) -> str:
    name = provider.strip().lower()
    if name in PROVIDERS:
        return name
    from conveyor._suggest import did_you_mean

    choices = " or ".join(PROVIDERS)
    close = did_you_mean(name, PROVIDERS)
    raise UsageError(
        f"unknown CI provider '{provider}'", hint=f"{close} choose {choices}" if close else f"choose {choices}"
    )


# -- what the workspace needs ---------------------------------------------------------------------


@dataclass
class _Remote:
    name: str
    url: str

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower() if "://" in self.url else "file"


@dataclass
class _Facts:
    branch: str
    python: str
    remote: _Remote | None = None
    deploy_model: str | None = None
    extras: list[str] = field(default_factory=list)
    requirements: bool = False  # requirements.txt at the root
    package: str | None = None  # pyproject.toml or setup.py at the root: the project installs itself
    check_reports: list[str] = field(default_factory=list)  # the HTML reports check stages write
    notes: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, ws: Workspace, *, branch: str, python: str) -> _Facts:
        facts = cls(branch=branch, python=python)
        facts.remote = _committed_remote(ws, facts.notes)
        extras: set[str] = set()
        if facts.remote is not None:
            extra = _EXTRAS.get(facts.remote.scheme)
            if extra:
                extras.add(extra)
            if facts.remote.scheme == "file":
                facts.notes.append(
                    f"the remote '{facts.remote.name}' is a folder ({facts.remote.url}), which a CI runner "
                    "cannot reach: the workflow runs without it; use a bucket or a server for CI"
                )
                facts.remote = None
        pipeline_file = ws.root / "conveyor.yaml"
        if pipeline_file.is_file():
            from conveyor.delivery._config import load_deploy_config
            from conveyor.pipeline._spec import load_pipeline

            pipeline = load_pipeline(ws)
            for stage in pipeline.stages.values():
                if stage.call == "conveyor.checks._stage:run":
                    extras.add("checks")
                    facts.check_reports += [o.path for o in stage.outs if o.path.endswith(f"/{stage.name}.html")]
                if any(out.kind == "plot" for out in stage.outs):
                    extras.add("plots")
            deploy = load_deploy_config(ws.root)
            if deploy.model and deploy.artifact:
                facts.deploy_model = deploy.model
                extras.add("postgres")  # the registry CI delivers to is a shared database
                if deploy.artifact.endswith(".skops"):
                    extras.add("sklearn")
        else:
            facts.notes.append("there is no conveyor.yaml yet: the workflow's 'conveyor run' needs one")
        facts.extras = sorted(extras)
        facts.requirements = (ws.root / "requirements.txt").is_file()
        facts.package = next((name for name in ("pyproject.toml", "setup.py") if (ws.root / name).is_file()), None)
        return facts

    def credentials(self) -> tuple[str, ...]:
        return () if self.remote is None else _CREDENTIALS.get(self.remote.scheme, ())

    def secrets(self, provider: str) -> tuple[str, ...]:
        names = list(self.credentials())
        if self.remote is not None and self.remote.scheme in ("gs", "gcs") and provider == "github":
            names.append("GCP_CREDENTIALS")
        if self.remote is not None and self.remote.scheme in ("gs", "gcs") and provider == "gitlab":
            names.append("GOOGLE_APPLICATION_CREDENTIALS")
        if self.deploy_model:
            names.insert(0, "CONVEYOR_DB")
        if provider == "gitlab":
            names.append("CONVEYOR_GITLAB_TOKEN")
        return tuple(names)

    def requirement(self) -> str:
        from conveyor import __version__

        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return f"conveyor{extras}=={__version__}"


def _committed_remote(ws: Workspace, notes: list[str]) -> _Remote | None:
    """The remote a clone of the repository would use by default: from the committed config only
    (``config.local`` and its secrets stay on this machine)."""
    from conveyor.config import _load_file

    committed = _load_file(ws.conveyor_dir / "config")
    urls = {
        key[len("remote.") : -len(".url")]: str(value)
        for key, value in committed.items()
        if key.startswith("remote.") and key.endswith(".url")
    }
    default = committed.get("core.remote")
    name = str(default) if default is not None else (next(iter(urls)) if len(urls) == 1 else None)
    if name is not None and name in urls:
        return _Remote(name, urls[name])
    local = ws.config.remotes()
    if name is None and len(urls) > 1:
        notes.append(
            f"{len(urls)} remotes and no default in .conveyor/config: the workflow pulls from none; "
            "set one with 'conveyor remote add --default', then run 'conveyor ci init --force'"
        )
    elif local:
        notes.append(
            "the remotes are in .conveyor/config.local only, which CI never sees: the workflow pulls from none; "
            "add the remote without --local (its secrets stay local), then run 'conveyor ci init --force'"
        )
    return None


# -- the files -------------------------------------------------------------------------------------


def render_workflow(provider: str, facts: _Facts) -> str:
    """The text of the workflow file for ``provider``."""
    return _github(facts) if provider == "github" else _gitlab(facts)


def _header(facts: _Facts, provider: str) -> list[str]:
    from conveyor import __version__

    deliver = (
        f"# On a push to {facts.branch}: the same, then 'conveyor deliver' releases the model '{facts.deploy_model}'\n"
        "# (register, staging, production: docs/delivery.md)."
        if facts.deploy_model
        else f"# On a push to {facts.branch}: the same (add a deploy: section to conveyor.yaml and run\n"
        f"# 'conveyor ci init {provider} --force' to deliver models from {facts.branch}: docs/delivery.md)."
    )
    change = "pull request" if provider == "github" else "merge request"
    return [
        f"# Continuous delivery with conveyor: written by 'conveyor ci init {provider}' (conveyor {__version__}).",
        f"# Edit it freely; 'conveyor ci init {provider} --force' writes it again from scratch. See docs/ci.md.",
        "#",
        f"# On a {change}: restore what the remote has, run the pipeline (its check stages are the",
        "# gates: a failing one fails the job), and post a report comparing the change with the target",
        "# branch: metrics and params diff, check results, plots, the gates' verdict.",
        *deliver.splitlines(),
    ]


def _install_lines(facts: _Facts) -> list[str]:
    """Shell lines (with their comments) that install conveyor and the project."""
    lines = [
        "# conveyor, with the extras this project uses (drop the pin to take the newest):",
        *(["#   " + line for line in _extras_explained(facts)]),
        f'pip install "{facts.requirement()}"',
    ]
    if facts.requirements:
        lines += ["# the project's dependencies (what its stages import)", "pip install -r requirements.txt"]
    if facts.package:
        lines += ["# the project itself, editable, so stages import its current code", "pip install -e ."]
    if not facts.requirements and not facts.package:
        lines += [
            "# add the project's dependencies (what its stages import), for example:",
            "# pip install -r requirements.txt",
        ]
    return lines


def _extras_explained(facts: _Facts) -> list[str]:
    why = {
        "checks": "checks: the check stages (NumPy, pandas, SciPy)",
        "plots": "plots: drawing the plots in the report (matplotlib)",
        "postgres": "postgres: the shared registry database deliver writes to (CONVEYOR_DB)",
        "sklearn": "sklearn: saving and loading skops models",
        "s3": "s3: the S3 remote",
        "gs": "gs: the Google Cloud Storage remote",
        "azure": "azure: the Azure remote",
        "ssh": "ssh: the SSH remote",
    }
    return [why[e] for e in facts.extras] or ["none needed so far"]


def _run_command(facts: _Facts) -> str:
    return "conveyor run --pull" if facts.remote is not None else "conveyor run"


def _remote_comment(facts: _Facts) -> list[str]:
    if facts.remote is None:
        return [
            "# No remote CI can reach is configured, so every stage runs from scratch. With one",
            "# ('conveyor remote add storage s3://BUCKET/PATH --default', committed), 'run --pull' restores",
            "# data and outputs and reuses the run cache: run 'conveyor ci init --force' after adding it.",
        ]
    return [
        f"# --pull: data and outputs from the remote '{facts.remote.name}' ({facts.remote.url}), and the run",
        "# cache, so stages computed before (here or on a laptop that pushed) are restored, not run.",
    ]


# -- GitHub Actions -------------------------------------------------------------------------------


def _github(facts: _Facts) -> str:
    out = [*_header(facts, "github"), "", "name: conveyor", "", "on:", "  push:"]
    out += [f"    branches: [{_yaml_string(facts.branch)}]", "  pull_request:", ""]
    out += [
        "permissions:",
        "  contents: read",
        "  pull-requests: write  # 'gh pr comment' posts the report on the pull request",
        "",
        "concurrency:  # a newer push to a pull request cancels the job it supersedes; deliveries finish",
        "  group: conveyor-${{ github.ref }}",
        "  cancel-in-progress: ${{ github.event_name == 'pull_request' }}",
        "",
        "jobs:",
        "  conveyor:",
        "    runs-on: ubuntu-latest",
        "    timeout-minutes: 120",
    ]
    env = _github_env(facts)
    if any(not line.lstrip().startswith("#") for line in env):
        out += ["    env:", *env]
    else:  # comments only: an empty env: would be null, which the schema refuses
        out += [line[2:] for line in env]
    out += [
        "    steps:",
        "      - name: Check out, with the whole history",
        "        uses: actions/checkout@v4",
        "        with:",
        "          fetch-depth: 0  # the report compares with the base branch, which must be here",
        "",
        "      - name: Set up Python",
        "        uses: actions/setup-python@v5",
        "        with:",
        f'          python-version: "{facts.python}"',
    ]
    dependency_file = "requirements.txt" if facts.requirements else facts.package
    if dependency_file is not None:  # setup-python's pip cache is keyed on it (and fails without one)
        out += ["          cache: pip", f"          cache-dependency-path: {dependency_file}"]
    if facts.deploy_model:
        out += [
            "",
            "      - name: Use the shared registry database (the secret CONVEYOR_DB), when it is set",
            "        # postgresql://USER:PASSWORD@HOST:5432/DB: runs, check results and the registry deliver",
            "        # writes to. Without it they are a SQLite file on the runner, thrown away with it. (Set only",
            "        # when not empty: conveyor refuses an empty CONVEYOR_DB, and forks get no secrets.)",
            "        env:",
            "          DB: ${{ secrets.CONVEYOR_DB }}",
            '        run: if [ -n "$DB" ]; then echo "CONVEYOR_DB=$DB" >> "$GITHUB_ENV"; fi',
        ]
    if facts.remote is not None and facts.remote.scheme in ("gs", "gcs"):
        out += [
            "",
            "      - name: Sign in to Google Cloud (the remote's credentials)",
            "        uses: google-github-actions/auth@v2",
            "        with:",
            "          credentials_json: ${{ secrets.GCP_CREDENTIALS }}  # a service account key, as a secret",
        ]
    out += ["", "      - name: Install conveyor and the project", "        run: |"]
    out += ["          python -m pip install --upgrade pip"]
    out += [f"          {line}" for line in _install_lines(facts)]
    out += [
        "",
        "      - name: Run the pipeline (check stages are the gates)",
        *[f"        {line}" for line in _remote_comment(facts)],
        f"        run: {_run_command(facts)}",
    ]
    if facts.remote is not None:
        out += [
            "",
            f"      - name: Share the results (data, outputs, run cache) with the remote '{facts.remote.name}'",
            "        if: github.event_name == 'push'",
            "        run: conveyor push --run-cache",
        ]
    if facts.deploy_model:
        out += [
            "",
            f"      - name: Deliver the model '{facts.deploy_model}'",
            "        if: github.event_name == 'push'",
            '        run: conveyor deliver --reason "CI, commit $GITHUB_SHA"',
        ]
    out += [
        "",
        "      - name: Write the report",
        "        if: ${{ !cancelled() }}  # also when a gate failed: that is when it matters most",
        "        env:",
        "          # a pull request: against its base branch; a push: against the commit before",
        "          BASE: >-",
        "            ${{ github.event_name == 'pull_request' && format('origin/{0}', github.base_ref) || 'HEAD^' }}",
        "          RUN_URL: ${{ github.server_url }}/${{ github.repository }}/actions/runs/${{ github.run_id }}",
        "        # A comment cannot show the runner's files, so the plots are linked to this run's",
        f"        # artifact (below) instead of shown; '{PLOTS}/' beside report.md holds them as PNG.",
        "        run: |",
        f'          conveyor report --md --base "$BASE" -o {REPORT} --artifact-url "$RUN_URL"',
        f'          cat {REPORT} >> "$GITHUB_STEP_SUMMARY"',
        "",
        "      - name: Keep the report, its plots and the checks' reports (the run's artifact)",
        "        if: ${{ !cancelled() }}",
        "        uses: actions/upload-artifact@v4",
        "        with:",
        "          name: conveyor-report",
        "          path: |",
        f"            {REPORT}",
        f"            {PLOTS}/",
        *[f"            {path}" for path in facts.check_reports],
        "          if-no-files-found: ignore",
        "",
        "      - name: Comment on the pull request",
        "        # A pull request from a fork gets a read-only token and no comment: the report is in the",
        "        # job summary and the artifact. To update one comment instead of adding one per push,",
        '        # use: gh pr comment "$PR" --edit-last --create-if-none --body-file report.md',
        "        if: >-",
        "          ${{ !cancelled() && github.event_name == 'pull_request'",
        "          && github.event.pull_request.head.repo.full_name == github.repository",
        f"          && hashFiles('{REPORT}') != '' }}}}",
        "        env:",
        "          GH_TOKEN: ${{ secrets.GITHUB_TOKEN }}",
        "          PR: ${{ github.event.pull_request.number }}",
        f'        run: gh pr comment "$PR" --body-file {REPORT}',
    ]
    return "\n".join(out) + "\n"


def _github_env(facts: _Facts) -> list[str]:
    lines: list[str] = []
    if facts.credentials() and facts.remote is not None:
        lines.append("      # From the repository's secrets (Settings > Secrets and variables > Actions).")
        lines.append(f"      # The credentials of the remote '{facts.remote.name}' ({facts.remote.url}):")
        lines += [f"      {name}: ${{{{ secrets.{name} }}}}" for name in facts.credentials()]
    elif facts.remote is not None and facts.remote.scheme in ("ssh", "sftp"):
        lines += [
            f"      # The remote '{facts.remote.name}' is reached over SSH: add a step that writes a deploy key",
            "      # from a secret to ~/.ssh/ and name it with remote.NAME.key_filename in .conveyor/config.",
        ]
    return lines


# -- GitLab CI --------------------------------------------------------------------------------------


def _gitlab(facts: _Facts) -> str:
    branch = _yaml_string(facts.branch)
    out = [*_header(facts, "gitlab"), ""]
    out += [
        "workflow:  # merge requests, and pushes to the main branch (no duplicate branch pipelines)",
        "  rules:",
        '    - if: $CI_PIPELINE_SOURCE == "merge_request_event"',
        f"    - if: $CI_COMMIT_BRANCH == {branch}",
        "",
        "conveyor:",
        f"  image: python:{facts.python}  # the full image: it has git and curl",
        "  variables:",
        '    GIT_DEPTH: "0"  # the whole history: the report compares with the target branch',
        "    PIP_CACHE_DIR: $CI_PROJECT_DIR/.cache/pip",
        "  # CI/CD variables (Settings > CI/CD > Variables; mask the secret ones):",
    ]
    if facts.deploy_model:
        out += [
            "  #   CONVEYOR_DB: the registry deliver writes to, postgresql://USER:PASSWORD@HOST:5432/DB (without",
            "  #     it, the registry is a SQLite file in the job, thrown away with it)",
        ]
    if facts.remote is not None:
        credentials = list(facts.credentials())
        if facts.remote.scheme in ("gs", "gcs"):
            credentials = ["GOOGLE_APPLICATION_CREDENTIALS (a variable of type File: a service account key)"]
        if credentials:
            out.append(f"  #   {', '.join(credentials)}: the credentials of the remote '{facts.remote.name}'")
        elif facts.remote.scheme in ("ssh", "sftp"):
            out.append(f"  #   an SSH key for the remote '{facts.remote.name}' (write it to ~/.ssh/ before the run)")
    out += [
        "  #   CONVEYOR_GITLAB_TOKEN: a project access token with the api scope (role Reporter or more), to",
        "  #     post the report on the merge request; without it the report is only in the artifacts",
        "  cache:",
        "    key: pip",
        "    paths: [.cache/pip]",
        "  script:",
    ]
    out += [f"    - {line}" if not line.startswith("#") else f"    {line}" for line in _install_lines(facts)]
    out += [
        "    # every step runs, and the job fails at the end with the first failure's code: the report",
        "    # is written and posted also when a gate failed",
        "    - status=0",
        *[f"    {line}" for line in _remote_comment(facts)],
        f"    - {_run_command(facts)} || status=$?",
    ]
    releases = []
    if facts.remote is not None:
        releases.append("conveyor push --run-cache")
    if facts.deploy_model:
        releases.append('conveyor deliver --reason "CI, commit $CI_COMMIT_SHA"')
    if releases:
        out += [
            "    - |",
            f'      if [ "$status" -eq 0 ] && [ "$CI_COMMIT_BRANCH" = {branch} ]; then',
            f"        {' && '.join(releases)} || status=$?",
            "      fi",
        ]
    out += [
        "    # a merge request: against its target branch (fetched: merge request pipelines lack it); a push:",
        "    # against the commit before. The plots are shown from this job's artifacts (below).",
        "    - |",
        '      if [ -n "$CI_MERGE_REQUEST_IID" ]; then',
        '        target="$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"',
        '        git fetch --quiet origin "+refs/heads/$target:refs/remotes/origin/$target"',
        '        base="origin/$target"',
        "      else",
        '        base="HEAD^"',
        "      fi",
        f'      conveyor report --md --base "$base" -o {REPORT} --plots-url "$CI_JOB_URL/artifacts/raw/{PLOTS}" \\',
        "        || status=$?",
        "    - |",
        f'      if [ -n "$CI_MERGE_REQUEST_IID" ] && [ -n "$CONVEYOR_GITLAB_TOKEN" ] && [ -f {REPORT} ]; then',
        "        curl --fail --silent --show-error --output /dev/null --request POST \\",
        '          --header "PRIVATE-TOKEN: $CONVEYOR_GITLAB_TOKEN" \\',
        f'          --data-urlencode "body@{REPORT}" \\',
        '          "$CI_API_V4_URL/projects/$CI_PROJECT_ID/merge_requests/$CI_MERGE_REQUEST_IID/notes" \\',
        "          || status=$?",
        "      fi",
        '    - exit "$status"',
        "  artifacts:",
        "    when: always",
        "    expire_in: 30 days",
        "    paths:",
        *[f"      - {_yaml_path(path)}" for path in (REPORT, f"{PLOTS}/", *facts.check_reports)],
    ]
    return "\n".join(out) + "\n"


def _yaml_string(value: str) -> str:
    """A branch name as a double-quoted YAML (and GitLab expression) string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _yaml_path(path: str) -> str:
    """A path as a YAML scalar: plain when it is plainly a path, else double-quoted."""
    import re

    return path if re.fullmatch(r"[A-Za-z0-9_./@+-]+", path) else _yaml_string(path)
