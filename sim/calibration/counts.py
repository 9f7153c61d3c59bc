"""Single-cell UMI counts read into one in-memory table of just the genes calibration needs.

``read_counts(paths, genes, metadata=...)`` accepts four formats, detected from the path(s):

``h5ad``
    An AnnData ``.h5ad`` file. The count matrix is the first of ``layers["counts"]``
    (taken as given when present), ``raw.X`` and ``X`` whose first rows look like raw
    counts (non-negative whole numbers); when none does, ``X`` is read and the check on
    its values reports what it holds. ``var_names`` are matched against the requested
    genes, or, when none of them matches, the first of the ``var`` columns
    ``gene_symbols``, ``feature_name``, ``gene_name``, ``symbol`` that does. ``obs`` comes
    from the file; a metadata table, if given, is joined on the cell id and its columns
    replace same-named ``obs`` columns. The file is opened with h5py and the matrix read
    through anndata's backed element API (``anndata.io.sparse_dataset`` for CSR/CSC, the
    h5py dataset for dense X) in chunks: CSR and dense by ``chunk_cells`` cells, CSC by
    as many genes as hold about as many values. ``anndata.read_h5ad(backed="r")`` is not
    used: it leaves only ``X`` on disk and loads ``layers`` whole.
``10x-mtx``
    A Cell Ranger folder (v2 or v3): ``matrix.mtx[.gz]``, ``features.tsv[.gz]`` (or
    ``genes.tsv[.gz]``) and ``barcodes.tsv[.gz]``; the path may also name the
    ``matrix.mtx[.gz]`` file. Gene symbols (the second column) are matched; only "Gene
    Expression" features count (a v3 third column names the feature type). The matrix is
    loaded whole with ``scipy.io.mmread``.
``10x-h5``
    A Cell Ranger HDF5 file (v3 ``matrix/`` group; v2 single-genome group). Read with
    h5py by chunks of ``chunk_cells`` barcodes: a barcode's counts are one contiguous
    slice of ``data``/``indices`` through ``indptr``. Gene symbols matched, "Gene
    Expression" features only.
``umi-table``
    One or several genes x cells UMI text tables (``.tsv``, ``.txt``, ``.csv``, optionally
    ``.gz``; MARS-seq/PIC-seq style): the first column holds gene names, the header row the
    cell (well) ids, with or without a name for the gene column. ``.csv`` is comma
    separated, ``.tsv`` tab separated, ``.txt`` whichever of tab, comma or blanks its first
    line uses. Several files are batches: their cells are concatenated in the order given,
    and a gene a batch does not list counts 0 there. Read with pandas in chunks of gene
    rows (about 16 million values a chunk).

The 10x and table formats carry no cell metadata: ``metadata`` (a tsv/csv table whose
first column is the cell id; delimiter sniffed) is then required. Its cells and the
data's must be the same set. A gene listed twice in the data (a 10x symbol shared by two
Ensembl ids, a table row repeated) counts the sum of its rows.

What a read returns (``Counts``): ``obs`` in the data's cell order, index the cell id
(str), text and categorical columns as str with missing values as ``""``, numeric columns
as read; ``library_size``, each cell's total UMI count over all genes of the data
(float64); ``counts``, the requested genes found (float32, cells x genes); the genes not
found, sorted.

Every chunk read is checked: counts must be finite, non-negative whole numbers (values
that are not are reported with the cell, the gene and the file: "looks normalised or
log-transformed; calibrate needs raw UMI counts"). Other user errors (missing or
unreadable input, no cells or genes, duplicate cell ids, cell ids that do not match the
metadata, an unknown format) raise ``CalibrationError`` naming the file.

Memory. A chunk of CSR rows costs about 23 bytes a stored value (data, indices, the checks
and the column selection), so the peak grows with ``chunk_cells``, not with the number of
cells (measured figures: ``benchmarks/bench_calibrate.py``, benchmarks/README.md). A 10x
``matrix.mtx`` is loaded whole: about 16-24 bytes a non-zero while parsing and converting;
for data that large use an ``.h5ad`` or the 10x ``.h5`` file, which are read in chunks. UMI
tables are text, parsed by pandas in chunks of gene rows.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sim.config.errors import ParameterError, reading

__all__ = ["FORMATS", "CalibrationError", "Counts", "detect_format", "read_counts"]

#: the accepted formats and what each is
FORMATS = {
    "h5ad": "an AnnData .h5ad file",
    "10x-mtx": "a 10x folder (matrix.mtx[.gz], features.tsv[.gz] or genes.tsv[.gz], "
               "barcodes.tsv[.gz])",
    "10x-h5": "a 10x HDF5 .h5 file",
    "umi-table": "genes x cells UMI tables (.tsv, .txt, .csv, optionally .gz), one per batch",
}
TABLE_SUFFIXES = (".tsv", ".txt", ".csv")
#: var columns of an h5ad that may hold gene symbols when var_names are ids
SYMBOL_COLUMNS = ("gene_symbols", "feature_name", "gene_name", "symbol")
#: values per chunk of a dense matrix or a text table (16.8 million: 134 MB as float64)
CHUNK_VALUES = 2**24
#: rows of an h5ad matrix looked at to decide whether it holds counts
PROBE_ROWS = 500
GENE_EXPRESSION = "Gene Expression"
#: what a format is, in a sentence about one input
NOUNS = {"h5ad": "an .h5ad file", "10x-mtx": "10x output", "10x-h5": "a 10x HDF5 file",
         "umi-table": "a UMI table"}


class CalibrationError(ParameterError):
    """Bad single-cell input or mapping; the message names the file, key/column, value and
    what is allowed."""


@dataclass(frozen=True)
class Counts:
    """UMI counts of the requested genes in every cell, with the cells' metadata."""

    obs: pd.DataFrame            # one row per cell, index = cell id (str); the metadata columns
    library_size: np.ndarray     # float64 (cells,): each cell's total UMI count over ALL genes
    genes: tuple[str, ...]       # the requested genes found in the data, column order of counts
    counts: np.ndarray           # float32 (cells, len(genes)): UMI counts of those genes
    missing: tuple[str, ...]     # requested genes not in the data (sorted)
    n_genes: int                 # genes in the data
    files: tuple[str, ...]       # what was read (absolute paths), for provenance
    fmt: str                     # "h5ad" | "10x-mtx" | "10x-h5" | "umi-table"


@dataclass
class _Read:
    """What a format's reader found, before the metadata is attached."""

    cells: pd.Index              # cell ids (str), data order
    obs: pd.DataFrame | None     # metadata the file carries (h5ad), else None
    library: np.ndarray          # float64 (cells,)
    counts: np.ndarray           # float64 (cells, requested genes), every requested gene
    seen: np.ndarray             # bool (requested genes,): found in the data
    n_genes: int
    files: list[Path]


def read_counts(paths: Sequence[Path] | Path | str, genes: Iterable[str], *,
                metadata: Path | None = None, chunk_cells: int = 10_000,
                progress: bool = False) -> Counts:
    """Read the UMI counts of ``genes`` (and every cell's library size) from ``paths``.

    ``paths``: one input (file or 10x folder), or several UMI tables (batches).
    ``metadata``: a cell metadata table (first column the cell id); required for the 10x
    and table formats. ``chunk_cells``: cells read at a time. ``progress``: a tqdm bar
    over the chunks (on stderr)."""
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if chunk_cells < 1:
        raise CalibrationError(f"chunk_cells = {chunk_cells}: must be a positive number of cells")
    wanted = list(dict.fromkeys(str(g) for g in genes))
    fmt = detect_format(paths)
    meta_path = None if metadata is None else Path(metadata)
    meta = None if meta_path is None else _read_metadata(meta_path)
    if meta is None and fmt != "h5ad":
        raise CalibrationError(
            f"{paths[0]}: {NOUNS[fmt]} carries no cell metadata: give a metadata table "
            "(tsv or csv) whose first column is the cell id")
    read = _READERS[fmt](paths, wanted, chunk_cells, progress)
    obs = _attach(read, meta, meta_path, paths[0])
    found = [g for g, s in zip(wanted, read.seen) if s]
    files = read.files + ([meta_path] if meta_path is not None else [])
    return Counts(
        obs=obs,
        library_size=read.library,
        genes=tuple(found),
        counts=np.ascontiguousarray(read.counts[:, read.seen], dtype=np.float32),
        missing=tuple(sorted(g for g, s in zip(wanted, read.seen) if not s)),
        n_genes=int(read.n_genes),
        files=tuple(str(p.resolve()) for p in files),
        fmt=fmt,
    )


# ---------------------------------------------------------------- format detection

def detect_format(paths: Sequence[Path]) -> str:
    """The format of ``paths`` (a key of ``FORMATS``); CalibrationError if there is none."""
    if not paths:
        raise CalibrationError("no single-cell input given: expected " + _accepted())
    kinds = [_kind(Path(p)) for p in paths]
    if len(paths) > 1:
        for path, kind in zip(paths, kinds):
            if kind != "umi-table":
                raise CalibrationError(
                    f"{path}: is {FORMATS[kind]}; several inputs are read only as UMI "
                    f"tables (one per batch): give {kind} input alone")
    return kinds[0]


def _kind(path: Path) -> str:
    """The format of one input path."""
    with _reading(path, "single-cell input", "a single-cell data file or 10x folder"):
        if not path.exists():
            raise FileNotFoundError(path)
    if path.is_dir():
        _mtx_files(path)
        return "10x-mtx"
    name = path.name.lower()
    if name in ("matrix.mtx", "matrix.mtx.gz"):
        return "10x-mtx"
    stem = name.removesuffix(".gz")
    if stem.endswith(TABLE_SUFFIXES):
        return "umi-table"
    if name.endswith(".h5ad"):
        return "h5ad"
    if name.endswith(".h5"):
        return "10x-h5"
    raise CalibrationError(f"{path}: unknown single-cell format; accepted: " + _accepted())


@contextmanager
def _reading(path: Path, noun: str, expected: str):
    """``reading`` for calibration inputs, also turning a corrupt compressed file into one
    CalibrationError naming it."""
    with reading(path, noun, expected, CalibrationError):
        try:
            yield
        except (EOFError, zlib.error) as exc:
            raise CalibrationError(f"{path}: cannot be read: {exc}") from None
        except OSError as exc:
            if exc.strerror is None and not isinstance(exc, (FileNotFoundError,
                                                             IsADirectoryError)):
                raise CalibrationError(f"{path}: cannot be read: {exc}") from None
            raise


def _accepted() -> str:
    return "; ".join(f"{text} ({key})" for key, text in FORMATS.items())


# ---------------------------------------------------------------- adding up chunks

class _Sum:
    """Library sizes and the requested genes' counts, added up chunk by chunk and checked.

    ``path``/``what`` name the matrix in messages; ``cells`` are all cell ids."""

    def __init__(self, path: Path, what: str, cells: pd.Index, wanted: list[str]):
        self.path, self.what, self.cells = path, what, cells
        self.index = {g: i for i, g in enumerate(wanted)}
        self.library = np.zeros(len(cells))
        self.counts = np.zeros((len(cells), len(wanted)))
        self.seen = np.zeros(len(wanted), dtype=bool)

    def add(self, rows: slice, block, names: np.ndarray, weights: np.ndarray | None = None):
        """Add ``block`` (cells ``rows`` x the genes ``names``; ndarray or scipy sparse).
        ``weights``: 1 for the genes that count towards the library size (default all)."""
        _check_counts(block, self, rows, names)
        if weights is None:
            library = block.sum(axis=1, dtype=np.float64)
        else:
            library = block @ weights
        self.library[rows] += np.asarray(library, dtype=np.float64).ravel()
        selector = self.selector(names)
        if selector.nnz:
            picked = block @ selector
            self.counts[rows] += picked.toarray() if sp.issparse(picked) else picked

    def selector(self, names: np.ndarray) -> sp.csr_matrix:
        """A 0/1 matrix (len(names) x requested genes) mapping data genes to requested ones;
        marks the requested genes it finds as seen."""
        cols = np.array([self.index.get(n, -1) for n in names], dtype=np.int64)
        rows = np.flatnonzero(cols >= 0)
        self.seen[cols[rows]] = True
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols[rows])),
                             shape=(len(names), len(self.index)))

    def result(self, n_genes: int, files: list[Path], obs: pd.DataFrame | None) -> _Read:
        return _Read(self.cells, obs, self.library, self.counts, self.seen, n_genes, files)


def _check_counts(block, where: _Sum, rows: slice, names: np.ndarray) -> None:
    """CalibrationError unless every value of ``block`` is a finite non-negative whole
    number; the message names the file, the matrix, the cell, the gene and the value."""
    values = block.data if sp.issparse(block) else np.asarray(block)
    if values.size == 0:
        return
    if values.dtype.kind in "iu":
        if values.dtype.kind == "u" or values.min() >= 0:
            return
        bad = values < 0
    elif values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        bad |= values < 0
        bad |= values != np.floor(values)
        if not bad.any():
            return
    elif values.dtype.kind == "b":
        return
    else:
        raise CalibrationError(f"{where.path}: {where.what}: holds {values.dtype} values, "
                               "not numbers; calibrate needs raw UMI counts")
    k = int(np.argmax(bad.ravel()))
    row, col = _locate(block, k)
    cell = where.cells[rows][row]
    value = values.ravel()[k]
    at = f"{where.path}: {where.what}: cell {cell!r}, gene {names[col]!r}"
    if not np.isfinite(value):
        raise CalibrationError(f"{at}: value {value} is not a count; calibrate needs raw "
                               "UMI counts (non-negative whole numbers)")
    kind = "is negative" if value < 0 else "is not a whole number"
    raise CalibrationError(f"{at}: value {value:g} {kind}: looks normalised or "
                           "log-transformed; calibrate needs raw UMI counts")


def _locate(block, k: int) -> tuple[int, int]:
    """(row, column) of the ``k``-th stored value of ``block``."""
    if not sp.issparse(block):
        return tuple(int(i) for i in np.unravel_index(k, block.shape))
    if block.format == "csr":
        return int(np.searchsorted(block.indptr, k, side="right") - 1), int(block.indices[k])
    if block.format == "csc":
        return int(block.indices[k]), int(np.searchsorted(block.indptr, k, side="right") - 1)
    coo = block.tocoo()
    return int(coo.row[k]), int(coo.col[k])


def _chunks(n: int, step: int, progress: bool, label: str) -> Iterator[slice]:
    """Slices of ``step`` over ``range(n)``, with a tqdm bar when ``progress``."""
    from tqdm.auto import tqdm

    starts = range(0, n, step)
    for a in tqdm(starts, desc=label, unit="chunk", disable=not progress, leave=False):
        yield slice(a, min(a + step, n))


def _ids(values, where, what: str = "cell ids") -> pd.Index:
    """Cell ids as a str Index; CalibrationError naming ``where`` (the file) and a few
    duplicates."""
    index = pd.Index(np.asarray(values).astype(str), dtype=object)
    if not index.is_unique:
        dup = index[index.duplicated()].unique()
        raise CalibrationError(f"{where}: {len(dup)} duplicate {what}, e.g. "
                               + ", ".join(repr(d) for d in dup[:3]))
    return index


def _not_empty(path: Path, n_cells: int, n_genes: int) -> None:
    if n_cells == 0 or n_genes == 0:
        raise CalibrationError(f"{path}: empty data: {n_cells} cells x {n_genes} genes")


# ---------------------------------------------------------------- h5ad

def _open_h5(path: Path, expected: str):
    """An open read-only h5py File; CalibrationError if it is missing or not HDF5."""
    import h5py

    with _reading(path, "file", expected):
        if path.is_dir():
            raise IsADirectoryError(path)
        try:
            return h5py.File(path, "r")
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise CalibrationError(f"{path}: not a readable HDF5 file ({exc}); expected "
                                   f"{expected}") from None


class _H5adMatrix:
    """One matrix element of an h5ad file (CSR, CSC or dense), read by slices."""

    def __init__(self, elem, var_key: str, what: str):
        import h5py
        from anndata.io import sparse_dataset

        self.var_key, self.what = var_key, what
        if isinstance(elem, h5py.Group):
            self.data = sparse_dataset(elem)
            self.format = self.data.format
        else:
            self.data = elem
            self.format = "dense"
        self.shape = tuple(int(n) for n in self.data.shape)

    def rows(self, s: slice):
        return self.data[s] if self.format != "dense" else self.data[s.start:s.stop]

    def columns(self, s: slice):
        return self.data[:, s]

    def probe(self):
        """The first rows (or, for CSC, the first columns) of the matrix."""
        if self.format == "csc":
            n = max(1, min(self.shape[1], PROBE_ROWS * self.shape[1] // max(self.shape[0], 1)))
            return self.columns(slice(0, n))
        return self.rows(slice(0, min(self.shape[0], PROBE_ROWS)))


def _looks_like_counts(block) -> bool:
    values = block.data if sp.issparse(block) else np.asarray(block)
    if values.dtype.kind in "iub":
        return values.dtype.kind != "i" or values.size == 0 or values.min() >= 0
    return bool(np.all(np.isfinite(values)) and np.all(values >= 0)
                and np.all(values == np.floor(values)))


def _h5ad_matrix(f, path: Path) -> _H5adMatrix:
    """The counts: ``layers["counts"]`` if present, else the first of ``raw.X`` and ``X``
    whose first rows look like counts, else ``X``."""
    if "layers" in f and "counts" in f["layers"]:
        return _H5adMatrix(f["layers"]["counts"], "var", "layers['counts']")
    candidates = []
    if "raw" in f and "X" in f["raw"]:
        candidates.append(_H5adMatrix(f["raw"]["X"], "raw/var", "raw.X"))
    if "X" in f:
        candidates.append(_H5adMatrix(f["X"], "var", "X"))
    if not candidates:
        raise CalibrationError(f"{path}: no count matrix: X, layers['counts'] and raw.X "
                               "are all absent")
    for matrix in candidates:
        if _looks_like_counts(matrix.probe()):
            return matrix
    return candidates[-1]


def _h5ad_genes(f, var_key: str, wanted: list[str]) -> np.ndarray:
    """Gene names of an h5ad matrix: var_names, or a symbol column when they match none."""
    from anndata.io import read_elem

    var = read_elem(f[var_key])
    names = np.asarray(var.index.astype(str))
    want = set(wanted)
    if want.isdisjoint(names):
        for column in SYMBOL_COLUMNS:
            if column in var.columns:
                symbols = np.asarray(var[column].astype(str))
                if not want.isdisjoint(symbols):
                    return symbols
    return names


def _read_h5ad(paths: list[Path], wanted: list[str], chunk_cells: int, progress: bool) -> _Read:
    from anndata.io import read_elem

    path = paths[0]
    with _open_h5(path, "an AnnData .h5ad file") as f:
        if "obs" not in f:
            raise CalibrationError(f"{path}: not an AnnData file: no obs")
        matrix = _h5ad_matrix(f, path)
        obs = read_elem(f["obs"])
        cells = _ids(obs.index, path)
        obs.index = cells
        names = _h5ad_genes(f, matrix.var_key, wanted)
        n_cells, n_genes = matrix.shape
        _not_empty(path, n_cells, n_genes)
        if len(cells) != n_cells or len(names) != n_genes:
            raise CalibrationError(f"{path}: {matrix.what} is {n_cells} x {n_genes} but obs "
                                   f"has {len(cells)} cells and var {len(names)} genes")
        total = _Sum(path, matrix.what, cells, wanted)
        if matrix.format == "csc":
            step = max(1, round(chunk_cells * n_genes / n_cells))
            for s in _chunks(n_genes, step, progress, path.name):
                total.add(slice(None), matrix.columns(s), names[s])
        else:
            step = chunk_cells if matrix.format == "csr" else _dense_rows(chunk_cells, n_genes)
            for s in _chunks(n_cells, step, progress, path.name):
                total.add(s, matrix.rows(s), names)
    return total.result(n_genes, [path], obs)


def _dense_rows(chunk_cells: int, n_genes: int) -> int:
    """Rows of a dense matrix read at a time: ``chunk_cells``, at most CHUNK_VALUES values."""
    return max(1, min(chunk_cells, CHUNK_VALUES // max(n_genes, 1)))


# ---------------------------------------------------------------- 10x

def _mtx_files(folder: Path) -> tuple[Path, Path, Path]:
    """(matrix, features, barcodes) of a 10x folder; CalibrationError naming what is absent."""
    def first(*names: str) -> Path | None:
        for name in names:
            for candidate in (folder / name, folder / (name + ".gz")):
                if candidate.is_file():
                    return candidate
        return None

    matrix = first("matrix.mtx")
    features = first("features.tsv", "genes.tsv")
    barcodes = first("barcodes.tsv")
    absent = [label for label, p in (("matrix.mtx[.gz]", matrix),
                                     ("features.tsv[.gz] or genes.tsv[.gz]", features),
                                     ("barcodes.tsv[.gz]", barcodes)) if p is None]
    if absent:
        raise CalibrationError(f"{folder}: a folder, read as 10x output, lacks "
                               + ", ".join(absent) + "; accepted inputs: " + _accepted())
    return matrix, features, barcodes


def _read_lines_table(path: Path) -> pd.DataFrame:
    """A headerless tab-separated file (10x features/barcodes) as str columns."""
    with _reading(path, "file", "a tab-separated file"):
        try:
            return pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            return pd.DataFrame({0: pd.Series([], dtype=str)})


def _features(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(gene symbols, Gene Expression mask) from a 10x features/genes table."""
    symbols = table[1 if table.shape[1] > 1 else 0].to_numpy(dtype=str)
    if table.shape[1] > 2:
        gex = table[2].to_numpy(dtype=str) == GENE_EXPRESSION
    else:
        gex = np.ones(len(symbols), dtype=bool)
    return symbols, gex


def _read_10x_mtx(paths: list[Path], wanted: list[str], chunk_cells: int, progress: bool) -> _Read:
    folder = paths[0] if paths[0].is_dir() else paths[0].parent
    matrix_path, features_path, barcodes_path = _mtx_files(folder)
    symbols, gex = _features(_read_lines_table(features_path))
    cells = _ids(_read_lines_table(barcodes_path)[0], barcodes_path, "barcodes")
    with _reading(matrix_path, "file", "a Matrix Market file"):
        try:
            matrix = _mmread(matrix_path)
        except (ValueError, TypeError) as exc:
            raise CalibrationError(f"{matrix_path}: not a Matrix Market file ({exc})") from None
    if matrix.shape != (len(symbols), len(cells)):
        raise CalibrationError(f"{matrix_path}: is {matrix.shape[0]} genes x {matrix.shape[1]} "
                               f"cells but {features_path.name} lists {len(symbols)} and "
                               f"{barcodes_path.name} {len(cells)}")
    _not_empty(matrix_path, len(cells), int(gex.sum()))
    by_cell = sp.csr_matrix(matrix.T)
    del matrix
    return _sum_10x(matrix_path, "matrix", cells, wanted, symbols, gex,
                    lambda s: by_cell[s], chunk_cells, progress,
                    [matrix_path, features_path, barcodes_path])


def _mmread(path: Path):
    """A Matrix Market file as a scipy sparse matrix (genes x cells)."""
    from scipy.io import mmread

    try:
        return mmread(path, spmatrix=False)
    except TypeError:  # scipy before spmatrix=
        return mmread(path)


def _sum_10x(path: Path, what: str, cells: pd.Index, wanted: list[str], symbols: np.ndarray,
             gex: np.ndarray, rows, chunk_cells: int, progress: bool, files: list[Path]) -> _Read:
    """Add up a cells x features matrix given by ``rows(slice)``, Gene Expression only."""
    names = np.where(gex, symbols.astype(object), None)  # other features match no gene
    weights = None if gex.all() else gex.astype(np.float64)
    total = _Sum(path, what, cells, wanted)
    for s in _chunks(len(cells), chunk_cells, progress, path.name):
        total.add(s, rows(s), names, weights)
    return total.result(int(gex.sum()), files, None)


def _read_10x_h5(paths: list[Path], wanted: list[str], chunk_cells: int, progress: bool) -> _Read:
    path = paths[0]
    with _open_h5(path, "a 10x HDF5 file") as f:
        group, symbols, gex = _h5_group(f, path)
        cells = _ids(group["barcodes"].asstr()[:], path, "barcodes")
        n_genes, n_cells = (int(n) for n in group["shape"][:])
        if n_cells != len(cells) or n_genes != len(symbols):
            raise CalibrationError(f"{path}: shape {n_genes} x {n_cells} but {len(symbols)} "
                                   f"features and {len(cells)} barcodes")
        _not_empty(path, n_cells, int(gex.sum()))
        indptr = group["indptr"][:]
        data, indices = group["data"], group["indices"]

        def rows(s: slice) -> sp.csr_matrix:
            lo, hi = int(indptr[s.start]), int(indptr[s.stop])
            return sp.csr_matrix((data[lo:hi], indices[lo:hi], indptr[s.start:s.stop + 1] - lo),
                                 shape=(s.stop - s.start, n_genes))

        return _sum_10x(path, group.name.strip("/") + "/data", cells, wanted, symbols, gex,
                        rows, chunk_cells, progress, [path])


def _h5_group(f, path: Path):
    """(matrix group, gene symbols, Gene Expression mask) of a 10x HDF5 file (v3 or v2)."""
    if "matrix" in f and "features" in f["matrix"]:
        group = f["matrix"]
        symbols = group["features"]["name"].asstr()[:]
        if "feature_type" in group["features"]:
            gex = group["features"]["feature_type"].asstr()[:] == GENE_EXPRESSION
        else:
            gex = np.ones(len(symbols), dtype=bool)
        return group, np.asarray(symbols, dtype=str), np.asarray(gex, dtype=bool)
    v2 = [k for k in f if "gene_names" in f[k]]
    if len(v2) == 1:
        group = f[v2[0]]
        symbols = np.asarray(group["gene_names"].asstr()[:], dtype=str)
        return group, symbols, np.ones(len(symbols), dtype=bool)
    raise CalibrationError(f"{path}: not a 10x HDF5 file: no matrix/ group with features "
                           f"(v3) nor one genome group with gene_names (v2); groups: "
                           + ", ".join(sorted(f.keys())))


# ---------------------------------------------------------------- UMI tables

def _open_text(path: Path):
    return gzip.open(path, "rt") if path.name.lower().endswith(".gz") else open(path)


def _first_line(path: Path) -> str:
    with _open_text(path) as handle:
        return handle.readline()


def _separator(path: Path, line: str) -> str:
    """The column separator of a table: by extension, else sniffed from its first line."""
    stem = path.name.lower().removesuffix(".gz")
    if stem.endswith(".csv"):
        return ","
    if stem.endswith(".tsv"):
        return "\t"
    try:
        return csv.Sniffer().sniff(line, delimiters="\t,;").delimiter
    except csv.Error:
        return r"\s+"


def _table_cells(path: Path) -> tuple[str, pd.Index]:
    """(separator, cell ids) of a genes x cells table, from its header."""
    with _reading(path, "UMI table", "a genes x cells text table"):
        sep = _separator(path, _first_line(path))
        try:
            head = pd.read_csv(path, sep=sep, index_col=0, nrows=1)
        except pd.errors.EmptyDataError:
            raise CalibrationError(f"{path}: empty data: no header row of cell ids") from None
        except (pd.errors.ParserError, ValueError) as exc:
            raise CalibrationError(f"{path}: not a genes x cells table ({exc})") from None
    return sep, _ids(head.columns, path)


def _numeric(chunk: pd.DataFrame, path: Path) -> np.ndarray:
    """The values of a table chunk; CalibrationError naming the first one that is text."""
    objects = [c for c, t in chunk.dtypes.items() if t.kind not in "iufb"]
    for column in objects:
        parsed = pd.to_numeric(chunk[column], errors="coerce")
        bad = parsed.isna() & chunk[column].notna()
        if bad.any():
            gene = bad.index[np.argmax(bad.to_numpy())]
            raise CalibrationError(f"{path}: cell {column!r}, gene {gene!r}: "
                                   f"{chunk.at[gene, column]!r} is not a number; "
                                   "calibrate needs raw UMI counts")
        chunk[column] = parsed
    return chunk.to_numpy()


def _read_tables(paths: list[Path], wanted: list[str], chunk_cells: int, progress: bool) -> _Read:
    heads = [_table_cells(p) for p in paths]
    cells = _ids(np.concatenate([c for _, c in heads]), ", ".join(map(str, paths)))
    total = _Sum(paths[0], "UMI table", cells, wanted)
    genes: set[str] = set()
    start = 0
    for path, (sep, batch) in zip(paths, heads):
        rows = slice(start, start + len(batch))
        start += len(batch)
        total.path, total.what = path, "UMI table"
        _not_empty(path, len(batch), 1)
        step = max(1, CHUNK_VALUES // len(batch))
        found = 0
        with _reading(path, "UMI table", "a genes x cells text table"):
            try:
                chunks = pd.read_csv(path, sep=sep, index_col=0, chunksize=step)
                for chunk in _progress(chunks, progress, path.name):
                    names = chunk.index.astype(str).to_numpy()
                    genes.update(names)
                    found += len(names)
                    total.add(rows, _numeric(chunk, path).T, names)
            except pd.errors.ParserError as exc:
                raise CalibrationError(f"{path}: not a genes x cells table ({exc})") from None
        _not_empty(path, len(batch), found)
    return total.result(len(genes), list(paths), None)


def _progress(chunks, progress: bool, label: str):
    from tqdm.auto import tqdm

    return tqdm(chunks, desc=label, unit="chunk", disable=not progress, leave=False)


# ---------------------------------------------------------------- metadata

def _read_metadata(path: Path) -> pd.DataFrame:
    """A cell metadata table (tsv/csv, delimiter sniffed; first column the cell id)."""
    with _reading(path, "metadata file", "a cell metadata table (tsv or csv)"):
        sample = _first_line(path)
        try:
            sep = csv.Sniffer().sniff(sample, delimiters="\t,;").delimiter
        except csv.Error:
            sep = "\t"
        try:
            head = pd.read_csv(path, sep=sep, nrows=0)
            table = pd.read_csv(path, sep=sep, dtype={head.columns[0]: str})
        except pd.errors.EmptyDataError:
            raise CalibrationError(f"{path}: empty metadata table") from None
        except pd.errors.ParserError as exc:
            raise CalibrationError(f"{path}: not a metadata table ({exc})") from None
    if table.empty:
        raise CalibrationError(f"{path}: empty metadata table: a header and no cells")
    table = table.set_index(table.columns[0])
    table.index = _ids(table.index, path)
    return table


def _attach(read: _Read, meta: pd.DataFrame | None, meta_path: Path | None,
            data_path: Path) -> pd.DataFrame:
    """The cells' metadata in data order: the file's obs joined with the metadata table."""
    if meta is None:
        return _tidy(read.obs)
    _same_cells(read.cells, meta.index, data_path, meta_path)
    meta = meta.reindex(read.cells)
    if read.obs is not None:
        kept = read.obs.drop(columns=[c for c in meta.columns if c in read.obs.columns])
        meta = pd.concat([kept, meta], axis=1)
    return _tidy(meta)


def _same_cells(data: pd.Index, meta: pd.Index, data_path: Path, meta_path: Path) -> None:
    """CalibrationError unless the data and the metadata hold the same cell ids."""
    lacking = data.difference(meta, sort=False)
    extra = meta.difference(data, sort=False)
    if len(lacking) == 0 and len(extra) == 0:
        return
    match = len(data) - len(lacking)
    parts = [(f"{meta_path}: cell ids do not match the data ({data_path}): {match} of "
              f"{len(data)} data cells are in the metadata")]
    if len(lacking):
        parts.append(f"{len(lacking)} data cells are not in it (e.g. "
                     + ", ".join(repr(c) for c in lacking[:3]) + ")")
    if len(extra):
        parts.append(f"{len(extra)} metadata cells are not in the data (e.g. "
                     + ", ".join(repr(c) for c in extra[:3]) + ")")
    raise CalibrationError("; ".join(parts))


def _tidy(obs: pd.DataFrame) -> pd.DataFrame:
    """obs with a str index without a name and text/categorical columns as str ('' = missing)."""
    obs = obs.copy()
    obs.index = pd.Index(obs.index.astype(str), dtype=object, name=None)
    for column in obs.columns:
        values = obs[column]
        if values.dtype.kind in "iufbmM":
            continue
        text = values.astype(object)
        obs[column] = text.where(text.notna(), "").map(str).astype(object)
    return obs


_READERS = {
    "h5ad": _read_h5ad,
    "10x-mtx": _read_10x_mtx,
    "10x-h5": _read_10x_h5,
    "umi-table": _read_tables,
}
