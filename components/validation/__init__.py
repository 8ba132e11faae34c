"""Dataset validation: pandera for structure (``schema``), Great Expectations for statistics
(``expectations``), both run by ``suite.validate_splits``; every failure names file,
column, rule and examples (``report``)."""
