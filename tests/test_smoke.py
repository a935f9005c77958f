from conftest import Project


def test_add_status_roundtrip(project: Project) -> None:
    project.write("data/a.txt", "a")
    project.ok("add", "data")
    assert "in sync" in project.ok("status")
