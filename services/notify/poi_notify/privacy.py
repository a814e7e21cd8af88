"""Phone numbers stay out of access logs: Kannel's callbacks carry the number in their query string."""

import logging

# Paths whose query strings hold numbers (from=, to=) or the gateway token.
PRIVATE_QUERY_PREFIXES = ("/v1/sms/",)


class PrivateQueryFilter(logging.Filter):
    """Drops the query string of the gateway's callbacks from uvicorn's access log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn.access records carry (client, method, path with query, http version, status) as args.
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, _, query = args[2].partition("?")
            if query and path.startswith(PRIVATE_QUERY_PREFIXES):
                record.args = (args[0], args[1], f"{path}?…", args[3], args[4])
        return True


def keep_numbers_out_of_access_logs() -> None:
    """Install the filter on uvicorn's access logger once."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, PrivateQueryFilter) for f in access.filters):
        access.addFilter(PrivateQueryFilter())
