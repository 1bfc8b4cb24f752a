"""The site's own display formats (``FORMAT_MODULE_PATH``), one module per language, read before Django's."""
