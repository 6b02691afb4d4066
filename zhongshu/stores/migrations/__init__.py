"""The PostgreSQL store's versioned SQL files (``NNNN_what.sql``), read by
``zhongshu.stores.schema``."""
