"""A Lasair filter: its checks, the SQL Lasair builds from it, and that SQL translated to DuckDB.

The checks and the query building follow Lasair's ``webserver/lasair/query_builder.py``
(github.com/lsst-uk/lasair-lsst, commit 308098e): the same forbidden strings and words, the same
messages; the FROM list is always ``objects`` plus the tables the filter uses; joins are
``objects.diaObjectId=<table>.diaObjectId`` clauses ANDed in front of the user's WHERE (without
parentheses, as Lasair does); single quotes become double quotes; an active filter runs with
``LIMIT 1000``.
"""

from __future__ import annotations

import re
import warnings

__all__ = ["LasairFilter", "LasairFilterError", "LasairFilterWarning"]


class LasairFilterError(ValueError):
    """A filter Lasair would refuse (the message is Lasair's own), or one that cannot run offline.

    A subclass of :class:`ValueError`, raised by :meth:`LasairFilter.check` and :func:`run_filter`.

    Examples
    --------
    >>> from lsstuk_kit.lasair import LasairFilter, LasairFilterError
    >>> try:
    ...     LasairFilter("objects.diaObjectId, sleep(10)").check()
    ... except LasairFilterError as err:
    ...     print(err)
    Cannot use the word SLEEP in the SELECT clause
    >>> issubclass(LasairFilterError, ValueError)
    True
    """


class LasairFilterWarning(UserWarning):
    """A filter that runs but may not do what its author means (e.g. it passes much of the stream).

    Warned by :func:`run_filter` (more than ``max_share`` of the alerts pass) and by
    :meth:`LasairFilter.warn_precedence` (a top-level OR after Lasair's join clauses).

    Examples
    --------
    >>> import warnings
    >>> from lsstuk_kit.lasair import LasairFilter, LasairFilterWarning
    >>> f = LasairFilter("objects.diaObjectId",
    ...                  "sherlock_classifications.classification = 'SN' OR objects.nDiaSources > 3")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     f.warn_precedence()
    >>> [w.category.__name__ for w in caught]
    ['LasairFilterWarning']
    >>> "wrap the WHERE in parentheses" in str(caught[0].message)
    True
    """


#: strings Lasair refuses anywhere in SELECT or WHERE
FORBIDDEN_STRINGS = ("#", "/*", "*/", ";", "||", "\\")
#: words Lasair refuses in SELECT
SELECT_FORBIDDEN_WORDS = ("create", "select", "from", "where", "join", "inner", "outer", "with", "high_priority",
                          "straight_join", "sql_small_result", "sql_big_result", "sql_buffer_result",
                          "sql_no_cache", "sql_calc_found_rows", "sleep")
#: words Lasair refuses in WHERE
WHERE_FORBIDDEN_WORDS = ("create", "select", "union", "exists", "window", "for", "into", "outfile", "dumpfile")
#: rows an active Lasair filter returns per run at most
LASAIR_LIMIT = 1000

_SPLIT = re.compile(r"\s|\(|\)|\{|\}")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_select(select: str):
    """Lasair's SELECT check: its refusal message, or None."""
    if len(select.strip()) == 0:
        return "SELECT expression cannot be blank. Try putting * in it."
    for s in FORBIDDEN_STRINGS:
        if s in select:
            return f"Cannot use {s} in the SELECT clause"
    words = _SPLIT.split(select.lower())
    for w in SELECT_FORBIDDEN_WORDS:
        if w in words:
            return f"Cannot use the word {w.upper()} in the SELECT clause"
    return None


def check_where(where: str):
    """Lasair's WHERE check: its refusal message, or None.

    As Lasair, a first line whose first word holds a ``-`` (a ``--`` comment, or e.g. ``a-b > 0``) is
    not looked at for forbidden words, and LIMIT/OFFSET are caught in lower case only; see
    :meth:`LasairFilter.check` for what this module adds.
    """
    if not where:
        return None
    for s in FORBIDDEN_STRINGS:
        if s in where:
            return f"Cannot use {s} in the WHERE clause"
    stripped = re.sub(r"^\S*\-+\s*.*", "", where)
    words = _SPLIT.split(stripped.lower())
    for w in WHERE_FORBIDDEN_WORDS:
        if w in words:
            return f"Cannot use the word {w.upper()} in the WHERE clause"
    if "limit" in stripped:
        return "Dont put LIMIT in the WHERE clause, use the parameter in the form/API instead"
    if "offset" in stripped:
        return "Dont put OFFSET in the WHERE clause, use the parameter in the form/API instead"
    return None


def _split_strings(sql):
    """Replace string literals ('...' or "...") by placeholders; return (code, [literal texts])."""
    out, lits, i, n = [], [], 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            j, buf = i + 1, []
            while j < n:
                if sql[j] == c and j + 1 < n and sql[j + 1] == c:
                    buf.append(c)
                    j += 2
                    continue
                if sql[j] == c:
                    break
                buf.append(sql[j])
                j += 1
            lits.append("".join(buf))
            out.append(f" __lit{len(lits) - 1}__ ")
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out), lits


def _top_level_or(code):
    depth = 0
    for tok in re.findall(r"\(|\)|\bor\b", code, flags=re.IGNORECASE):
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth -= 1
        elif depth == 0:
            return True
    return False


class LasairFilter:
    """A Lasair filter: SELECT and WHERE, and the watchlist, watchmaps and annotators it joins.

    Parameters
    ----------
    select : str
        The SELECT attributes, e.g. ``"objects.diaObjectId, objects.g_psfFlux"``.
    where : str
        The WHERE conditions (may end with ``ORDER BY ...``, or be only an ORDER BY).
    watchlists : DataFrame, path or dict, optional
        One watchlist (``name``, ``ra``, ``dec``, optional ``radius`` arcsec); a dict ``{wl_id: watchlist}``
        names its id (default 1). Lasair filters join at most one watchlist.
    watchmaps : Watchmap, list or dict, optional
        :class:`~lsstuk_kit.skyareas.Watchmap` (s); a dict ``{ar_id: Watchmap}`` names their ids (default 1, 2, ...).
        Several are all required (Lasair joins ``area_hits AS ar0``, ``ar1``, ...).
    annotators : dict, optional
        ``{topic: DataFrame}`` of annotations (see :func:`lsstuk_kit.lasair.annotations`); each is joined as
        ``annotations AS <topic>``.
    tables : str, optional
        Lasair's FROM list as its form/API gives it (``"sherlock_classifications, watchlist:1, area:2&3,
        annotator:fastfinder, crossmatch_tns"``). By default it is inferred: ``sherlock_classifications`` and
        ``crossmatch_tns`` when the SELECT or WHERE names them, plus the watchlist, watchmaps and annotators given.
    name : str, optional

    Examples
    --------
    >>> from lsstuk_kit.lasair import LasairFilter
    >>> f = LasairFilter("objects.diaObjectId, objects.g_psfFlux, mjdnow()-objects.lastDiaSourceMjdTai AS since",
    ...                  "objects.g_psfFlux > 200000")
    >>> for line in f.sql.splitlines():
    ...     print(line.rstrip())
    SELECT objects.diaObjectId, objects.g_psfFlux, mjdnow()-objects.lastDiaSourceMjdTai AS since
    FROM objects
    WHERE
     objects.g_psfFlux > 200000 LIMIT 1000
    >>> f.columns_used
    ['objects.diaObjectId', 'objects.g_psfFlux', 'objects.lastDiaSourceMjdTai']
    >>> LasairFilter("objects.diaObjectId", "objects.ra > 1; DELETE FROM objects").check()
    Traceback (most recent call last):
    ...
    lsstuk_kit.lasair.query.LasairFilterError: Cannot use ; in the WHERE clause
    """

    def __init__(self, select, where="", *, watchlists=None, watchmaps=None, annotators=None, tables=None,
                 name=None):
        self.select = select if isinstance(select, str) else ""
        self.where = where or ""
        self.name = name
        self._types_ok = isinstance(select, str) and isinstance(self.where, str)
        if watchlists is not None and not isinstance(watchlists, dict):
            watchlists = {1: watchlists}
        self.watchlists = dict(watchlists or {})
        if watchmaps is not None and not isinstance(watchmaps, dict):
            watchmaps = list(watchmaps) if isinstance(watchmaps, (list, tuple)) else [watchmaps]
            watchmaps = {i + 1: w for i, w in enumerate(watchmaps)}
        self.watchmaps = dict(watchmaps or {})
        self.annotators = dict(annotators or {})
        self.tables = tables if tables is not None else self._infer_tables()

    def __repr__(self):
        return f"LasairFilter({self.name or ''}SELECT {self.select!r} WHERE {self.where!r}, FROM {self.tables!r})"

    def _infer_tables(self):
        text = f"{self.select} {self.where}".lower()
        parts = []
        if re.search(r"\bsherlock_classifications\s*\.", text):
            parts.append("sherlock_classifications")
        if self.watchlists:
            parts.append(f"watchlist:{next(iter(self.watchlists))}")
        if self.watchmaps:
            parts.append("watchmap:" + "&".join(str(k) for k in self.watchmaps))
        if self.annotators:
            parts.append("annotator:" + "&".join(self.annotators))
        if re.search(r"\bcrossmatch_tns\s*\.", text):
            parts.append("crossmatch_tns")
        return ", ".join(parts)

    # ------------------------------------------------------------------ Lasair's parse of the FROM list
    def _from(self):
        """(sherlock, crossmatch_tns, watchlist_id, area_ids, topics), as Lasair's build_query reads the FROM list."""
        sherlock, tns, wl, areas, topics = False, False, None, None, []
        items = [t.strip().lower() for t in (self.tables or "").split(",") if t.strip()]
        for t in items:
            if t == "sherlock_classifications":
                sherlock = True
            if t.startswith("watchlist:"):
                try:
                    wl = int(t.split(":")[1])
                except ValueError:
                    raise LasairFilterError(f"Error in FROM list, {t} not of the form watchlist:nnn") from None
            if t.startswith(("area:", "watchmap:")):
                areas = t.split(":")[1].split("&")
            if t.startswith("annotator"):
                try:
                    topics += t.split(":")[1].split("&")
                except IndexError:
                    raise LasairFilterError(f"Error in FROM list, {t} not of the form annotation:topic") from None
        for t in items:
            if t == "crossmatch_tns":
                if wl:
                    raise LasairFilterError("Error in FROM list, cannot have both watchlist and crossmatch_tns")
                tns = True
        return sherlock, tns, wl, areas, topics

    # ------------------------------------------------------------------ public
    def check(self):
        """Refuse what Lasair refuses, with Lasair's reason.

        Lasair's checks (``check_select_forbidden``, ``check_where_forbidden`` and the FROM-list errors of
        ``build_query``), then what Lasair leaves to MySQL but an offline run must refuse itself: an
        upper-case LIMIT/OFFSET in the WHERE (Lasair's own check only sees lower case; MySQL then fails on
        two LIMITs), a watchlist, watchmap or annotator named in the FROM list without its data, and more
        than one watchlist (Lasair's form takes one).

        Returns
        -------
        LasairFilter
            ``self``, so ``LasairFilter(...).check()`` chains.

        Raises
        ------
        LasairFilterError
        """
        if not self._types_ok:
            raise LasairFilterError("SELECT and WHERE must be text")
        msg = check_select(self.select) or check_where(self.where)
        if msg:
            raise LasairFilterError(msg)
        code, _ = _split_strings(self.where)
        if re.search(r"\b(limit|offset)\b", code, flags=re.IGNORECASE):
            word = re.search(r"\b(limit|offset)\b", code, flags=re.IGNORECASE).group(1).upper()
            raise LasairFilterError(f"Dont put {word} in the WHERE clause, use the parameter in the form/API instead "
                                    "(Lasair's check sees only lower case; its database then fails on a second "
                                    "LIMIT)")
        if len(self.watchlists) > 1:
            raise LasairFilterError(f"a Lasair filter joins one watchlist; got {len(self.watchlists)}")
        _, _, wl, areas, topics = self._from()
        if wl is not None and wl not in self.watchlists:
            raise LasairFilterError(f"the FROM list names watchlist:{wl} but no watchlist {wl} was given "
                                    f"(watchlists={sorted(self.watchlists)})")
        for a in areas or []:
            if not a.strip().isdigit() or int(a) not in self.watchmaps:
                raise LasairFilterError(f"the FROM list names watchmap {a} but it was not given "
                                        f"(watchmaps={sorted(self.watchmaps)})")
        known = {t.lower() for t in self.annotators}
        for t in topics:
            if not _IDENT.match(t):
                raise LasairFilterError(f"annotator topic {t!r} is not a valid table name")
            if t not in known:
                raise LasairFilterError(f"the FROM list names annotator {t} but no annotations for it were given "
                                        f"(annotators={sorted(self.annotators)})")
        return self

    @property
    def sql(self) -> str:
        """The query as Lasair builds it (``build_query``) and runs it for an active filter (``LIMIT 1000``)."""
        return self._build() + f" LIMIT {LASAIR_LIMIT}"

    def _build(self, *, tns_watchlist_id=None):
        from .tables import TNS_WATCHLIST_ID

        select = self.select.replace("'", '"').replace("objects_ext", "objects")
        where = self.where.replace("'", '"').replace("objects_ext", "objects") if self.where else self.where
        sherlock, tns, wl, areas, topics = self._from()
        tables, clauses = ["objects"], []
        if sherlock:
            tables.append("sherlock_classifications")
            clauses.append("objects.diaObjectId=sherlock_classifications.diaObjectId")
        if wl:
            tables.append("watchlist_hits")
            clauses += ["objects.diaObjectId=watchlist_hits.diaObjectId", f"watchlist_hits.wl_id={wl}"]
        if areas:
            if len(areas) == 1:
                tables.append("area_hits")
                clauses += ["objects.diaObjectId=area_hits.diaObjectId", f"area_hits.ar_id={areas[0]}"]
            else:
                for i, a in enumerate(areas):
                    tables.append(f"area_hits as ar{i}")
                    clauses += [f"objects.diaObjectId=ar{i}.diaObjectId", f"ar{i}.ar_id={a}"]
        if tns:
            tables += ["watchlist_hits", "crossmatch_tns"]
            clauses += ["objects.diaObjectId=watchlist_hits.diaObjectId",
                        f"watchlist_hits.wl_id={TNS_WATCHLIST_ID if tns_watchlist_id is None else tns_watchlist_id}",
                        "watchlist_hits.name=crossmatch_tns.tns_name"]
        for t in topics:
            tables.append(f"annotations AS {t}")
            clauses += [f"objects.diaObjectId={t}.diaObjectId", f'{t}.topic="{t}"']
        order = ""
        if where:
            if where.lower().strip().startswith("order"):
                order = " " + where
            elif where.strip():
                clauses.append(where)
        sql = "SELECT " + select + " \nFROM " + ", ".join(tables)
        if clauses:
            sql += " \nWHERE\n " + " AND\n ".join(clauses)
        return sql + order

    @property
    def uses(self) -> dict:
        """The join tables the filter uses: ``sherlock``, ``tns``, ``watchlist`` (id), ``watchmaps``, ``annotators``."""
        sherlock, tns, wl, areas, topics = self._from()
        return {"sherlock": sherlock, "tns": tns, "watchlist": wl,
                "watchmaps": [int(a) for a in areas or [] if a.strip().isdigit()], "annotators": topics}

    @property
    def columns_used(self) -> list:
        """The ``table.column`` names the SELECT and WHERE refer to (unqualified objects columns as ``objects.x``)."""
        from .features import OBJECT_COLUMNS

        code, _ = _split_strings(f"{self.select} \n {self.where}".replace("objects_ext", "objects"))
        found = set(re.findall(r"\b([A-Za-z_]\w*)\s*\.\s*([A-Za-z_]\w*)\b", code))
        used = {f"{t}.{c}" for t, c in found}
        qualified = {c.lower() for _, c in found} | {t.lower() for t, _ in found}
        lower = {c.lower(): c for c in OBJECT_COLUMNS}
        for w in re.findall(r"(?<![.\w])([A-Za-z_]\w*)(?![\w.])", code):
            if w.lower() in lower and w.lower() not in qualified:
                used.add(f"objects.{lower[w.lower()]}")
        return sorted(used)

    def duckdb_sql(self, row_column="__alert_row", now_column="__mjdnow"):
        """The query in DuckDB's dialect, for the offline run (one ``objects`` row per alert).

        ``mjdnow()`` becomes the alert's own time (``objects.<now_column>``), double-quoted strings (MySQL
        strings after Lasair's quote swap) become single-quoted, backticks become identifier quotes,
        ``LIKE`` is case-insensitive as in MySQL (``ILIKE``), one-argument ``LOG(x)`` is the natural log,
        ``a DIV b`` integer division. MySQL's ``JSON_EXTRACT`` value is typed at run time; here it is a
        number (DOUBLE) where it is compared with or added to a number literal, else its text (strings
        unquoted, so ``JSON_UNQUOTE`` does nothing more);
        the alert's row number is added to the SELECT; no LIMIT (it applies per Lasair run, i.e. per alert).
        """
        from .tables import TNS_WATCHLIST_ID

        sql = self._build(tns_watchlist_id=TNS_WATCHLIST_ID)
        head, sep, rest = sql.partition(" \nFROM ")
        sql = head + f", objects.{row_column} AS {row_column}" + sep + rest
        code, lits = _split_strings(sql)
        code = code.replace("`", '"')
        code = re.sub(r"\bmjdnow\s*\(\s*\)", f"objects.{now_column}", code, flags=re.IGNORECASE)
        code = re.sub(r"(?<!\w)(NOT\s+)?LIKE\b", lambda m: (m.group(1) or "") + "ILIKE", code, flags=re.IGNORECASE)
        code = re.sub(r"\bDIV\b", "//", code, flags=re.IGNORECASE)
        code = _json_extract(_natural_log(code))
        return re.sub(r" __lit(\d+)__ ", lambda m: "'" + lits[int(m.group(1))].replace("'", "''") + "'", code)

    def warn_precedence(self):
        """Warn when the WHERE has a top-level OR and Lasair prepends join clauses to it without parentheses."""
        code, _ = _split_strings(self.where or "")
        joins = any(v for k, v in self.uses.items())
        if joins and not code.strip().lower().startswith("order") and _top_level_or(code):
            warnings.warn("this WHERE has an OR outside parentheses: Lasair ANDs its join conditions in front of "
                          "it without parentheses, so 'join AND a OR b' means '(join AND a) OR b' and b matches "
                          "every row of the joined tables; wrap the WHERE in parentheses", LasairFilterWarning,
                          stacklevel=3)


_NUMERIC_NEXT = re.compile(r"\s*(<=|>=|<>|!=|=|<|>|\+|-|\*|/|between\b)\s*[-+]?\s*[\d.]", re.IGNORECASE)
_NUMERIC_PREV = re.compile(r"[\d.]\s*(<=|>=|<>|!=|=|<|>|\+|-|\*|/)\s*$")


def _json_extract(code):
    """MySQL ``JSON_EXTRACT(j, path)`` as DuckDB: a DOUBLE beside a number literal, else the value's text."""
    out, i = [], 0
    for m in re.finditer(r"\bjson_extract\s*\(", code, flags=re.IGNORECASE):
        if m.start() < i:
            continue
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"(": 1, ")": -1}.get(code[j], 0)
            j += 1
        args = code[m.end():j - 1]
        numeric = _NUMERIC_NEXT.match(code, j) or _NUMERIC_PREV.search(code[:m.start()])
        call = (f"TRY_CAST(json_extract({args}) AS DOUBLE)" if numeric else f"json_extract_string({args})")
        out.append(code[i:m.start()] + call)
        i = j
    out.append(code[i:])
    return "".join(out)


def _natural_log(code):
    """MySQL ``LOG(x)`` is ln(x) (DuckDB's ``log(x)`` is log10): rewrite one-argument calls as ``ln``."""
    out, i = [], 0
    for m in re.finditer(r"\blog\s*\(", code, flags=re.IGNORECASE):
        depth, j, commas = 1, m.end(), 0
        while j < len(code) and depth:
            if code[j] == "(":
                depth += 1
            elif code[j] == ")":
                depth -= 1
            elif code[j] == "," and depth == 1:
                commas += 1
            j += 1
        if commas == 0:
            out.append(code[i:m.start()] + "ln(")
            i = m.end()
    out.append(code[i:])
    return "".join(out)
