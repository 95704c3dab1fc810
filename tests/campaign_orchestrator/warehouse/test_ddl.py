import pytest

from campaign_orchestrator.warehouse.ddl import DIALECTS, ddl


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_the_checked_in_ddl_matches_the_table_definitions(repo, dialect):
    assert (repo / "sql" / f"schema.{dialect}.sql").read_text() == ddl(dialect), "run `make schema`"
