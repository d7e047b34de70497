"""Personal data: how long it is kept (:mod:`.retention`), forgetting one person
(:mod:`.forget`) and keeping it out of logs (:mod:`.redact`). Policy settings in
:mod:`.config`."""
