"""The marketer console: browse, edit, submit and approve definitions in a browser (`campaigns console`).

A service over the engine, like the inbox (not a stage: it may read every stage). The repository
stays the record: the console reads and writes the same YAML files under `marketing/`, checked by
the same loader and lint as `campaigns validate` before anything is written, and only approved
campaigns are ever sent. Importing this package imports nothing of the web stack; `app` does.
"""
