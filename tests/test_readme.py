"""The README's set-up commands are the ones CI runs, and they name only things that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", setup)


def test_exactly_two_setup_commands_app_and_tests():
    app, tests = readme_commands()
    assert app.endswith("python app.py") and tests.endswith("python -m pytest")
    assert "\n" not in app and "\n" not in tests
    for command in (app, tests):
        assert command.index("pip install torch==2.13.0") < command.index("pip install -e")


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci_lines


def test_spaces_front_matter():
    head = (ROOT / "README.md").read_text().split("---")[1]
    assert "sdk: gradio" in head and "app_file: app.py" in head and "python_version" in head
