"""read_counts: every input format gives the same table; chunked h5ad reads; one clear
CalibrationError naming the file for each kind of bad input."""

import gzip
import time

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("anndata")
pytest.importorskip("h5py")

from sim.calibration import counts as counts_module
from sim.calibration.counts import CalibrationError, read_counts
from tests.scrna_synth import (
    CELL_TYPE_LABELS,
    MODEL_TYPES,
    Planted,
    make_dataset,
    write_10x_h5,
    write_10x_mtx,
    write_h5ad,
    write_metadata,
    write_umi_tables,
)

#: genes asked for: ligands, a receptor, a programme gene, a marker, and one not in the data
WANTED = ["Vegfa", "Cxcr2", "Mki67", "Osm", "Krt18", "NotAGene"]


@pytest.fixture(scope="module")
def ds():
    return make_dataset(Planted(mice_per_stage=2, cells_per_mouse=120, seed=3))


@pytest.fixture(scope="module")
def inputs(ds, tmp_path_factory):
    """Each format (and h5ad storage variant) written from ``ds``: name -> (paths, metadata)."""
    folder = tmp_path_factory.mktemp("inputs")
    meta = write_metadata(ds, folder / "metadata.csv")
    tables, table_meta = write_umi_tables(ds, folder / "tables", batches=2)
    gz_tables, gz_meta = write_umi_tables(ds, folder / "gz", batches=3, suffix=".csv.gz",
                                          gene_header=False)
    return {
        "h5ad-csr": ([write_h5ad(ds, folder / "csr.h5ad")], None),
        "h5ad-csc": ([write_h5ad(ds, folder / "csc.h5ad", x="csc")], None),
        "h5ad-dense": ([write_h5ad(ds, folder / "dense.h5ad", x="dense")], None),
        "h5ad-layer": ([write_h5ad(ds, folder / "layer.h5ad", counts_in="layer")], None),
        "h5ad-raw": ([write_h5ad(ds, folder / "raw.h5ad", counts_in="raw", x="dense")], None),
        "10x-mtx-v3": ([write_10x_mtx(ds, folder / "v3", antibody=True)], meta),
        "10x-mtx-v2": ([write_10x_mtx(ds, folder / "v2", version=2)], meta),
        "10x-h5": ([write_10x_h5(ds, folder / "x.h5", antibody=True)], meta),
        "umi-table": (tables, table_meta),
        "umi-table-csv-gz": (gz_tables, gz_meta),
    }


def expected(ds):
    """(library sizes, counts of the WANTED genes the data has) straight from the dataset."""
    library = np.asarray(ds.counts.sum(axis=1), dtype=np.float64).ravel()
    found = [g for g in WANTED if g in ds.genes]
    return library, found, ds.counts[:, [ds.genes.index(g) for g in found]].toarray()


@pytest.mark.parametrize("name", ["h5ad-csr", "h5ad-csc", "h5ad-dense", "h5ad-layer",
                                  "h5ad-raw", "10x-mtx-v3", "10x-mtx-v2", "10x-h5",
                                  "umi-table", "umi-table-csv-gz"])
def test_every_format_reads_back_the_same(ds, inputs, name):
    paths, meta = inputs[name]
    got = read_counts(paths, WANTED, metadata=meta, chunk_cells=100)
    library, found, counts = expected(ds)
    assert got.fmt == name.removesuffix("-csv-gz").removesuffix("-v2").removesuffix("-v3") \
        if not name.startswith("h5ad") else got.fmt == "h5ad"
    assert list(got.obs.index) == list(ds.obs.index)
    pd.testing.assert_frame_equal(got.obs, ds.obs.rename_axis(None))
    np.testing.assert_array_equal(got.library_size, library)
    assert got.library_size.dtype == np.float64
    assert got.genes == tuple(found)
    np.testing.assert_array_equal(got.counts, counts)
    assert got.counts.dtype == np.float32 and got.counts.shape == (len(ds.obs), len(found))
    assert got.missing == ("NotAGene",)
    assert got.n_genes == len(ds.genes)  # an antibody feature is not a gene
    assert all(f.startswith("/") for f in got.files)


def test_a_gene_a_batch_does_not_list_counts_zero_there(ds, tmp_path):
    zeroed = make_dataset(ds.planted)
    half = len(zeroed.cells) // 2
    column = zeroed.genes.index("Cxcr2")
    zeroed.counts = zeroed.counts.tolil()
    zeroed.counts[half:, column] = 0
    zeroed.counts = zeroed.counts.tocsr()
    tables, meta = write_umi_tables(zeroed, tmp_path, batches=2)
    assert "Cxcr2" not in pd.read_csv(tables[1], sep="\t", index_col=0).index
    got = read_counts(tables, ["Cxcr2"], metadata=meta)
    np.testing.assert_array_equal(got.counts[:, 0], zeroed.counts[:, column].toarray().ravel())
    assert got.n_genes == len(zeroed.genes)


@pytest.mark.parametrize("name", ["h5ad-csr", "h5ad-csc", "h5ad-dense", "h5ad-layer", "10x-h5"])
def test_chunk_size_does_not_change_the_result(inputs, name):
    paths, meta = inputs[name]
    whole = read_counts(paths, WANTED, metadata=meta, chunk_cells=100_000)
    small = read_counts(paths, WANTED, metadata=meta, chunk_cells=7)
    np.testing.assert_array_equal(whole.counts, small.counts)
    np.testing.assert_array_equal(whole.library_size, small.library_size)


@pytest.mark.parametrize("name", ["h5ad-csr", "h5ad-dense", "h5ad-layer"])
def test_h5ad_is_read_by_chunks_never_whole(ds, inputs, monkeypatch, name):
    """Rows come in slices of at most chunk_cells; anndata.read_h5ad (which would load
    layers whole) is not used."""
    import anndata

    def refuse(*args, **kwargs):
        raise AssertionError("read_h5ad loads more than the chunks")

    monkeypatch.setattr(anndata, "read_h5ad", refuse)
    monkeypatch.setattr(counts_module, "PROBE_ROWS", 20)
    slices = []
    rows = counts_module._H5adMatrix.rows

    def recorded(self, s):
        block = rows(self, s)
        assert block.shape == (s.stop - s.start, len(ds.genes))
        slices.append((s.start, s.stop))
        return block

    monkeypatch.setattr(counts_module._H5adMatrix, "rows", recorded)
    read_counts(inputs[name][0], WANTED, chunk_cells=50)
    if name != "h5ad-layer":  # layers["counts"] is taken without a look at its first rows
        assert slices.pop(0) == (0, 20)
    assert all(stop - start <= 50 for start, stop in slices)
    assert [a for a, _ in slices] == list(range(0, len(ds.obs), 50))
    assert slices[-1][1] == len(ds.obs)


def test_h5ad_csc_is_read_by_gene_chunks(ds, inputs, monkeypatch):
    sizes = []
    columns = counts_module._H5adMatrix.columns

    def recorded(self, s):
        block = columns(self, s)
        sizes.append(block.shape[1])
        return block

    monkeypatch.setattr(counts_module._H5adMatrix, "columns", recorded)
    read_counts(inputs["h5ad-csc"][0], WANTED, chunk_cells=50)
    assert len(sizes) > 3 and max(sizes[1:]) < len(ds.genes)


def test_h5ad_metadata_is_joined_on_the_cell_id(ds, inputs, tmp_path):
    extra = pd.DataFrame({"cell": ds.obs.index[::-1], "batch": "b1",
                          "stage": "relabelled"}).set_index("cell")
    path = tmp_path / "extra.tsv"
    extra.to_csv(path, sep="\t")
    got = read_counts(inputs["h5ad-csr"][0], WANTED, metadata=path)
    assert list(got.obs.index) == list(ds.obs.index)
    assert (got.obs["batch"] == "b1").all() and (got.obs["stage"] == "relabelled").all()
    assert (got.obs["cell_type"] == ds.obs["cell_type"]).all()
    assert got.files[-1] == str(path)


def test_h5ad_var_ids_fall_back_to_a_symbol_column(ds, tmp_path):
    import anndata

    adata = anndata.AnnData(X=ds.counts.astype(np.float32), obs=ds.obs,
                            var=pd.DataFrame({"gene_symbols": ds.genes},
                                             index=[f"ENSMUSG{i:011d}" for i in range(len(ds.genes))]))
    adata.write_h5ad(tmp_path / "ids.h5ad")
    got = read_counts([tmp_path / "ids.h5ad"], WANTED)
    assert got.genes == tuple(expected(ds)[1])


# ---------------------------------------------------------------- bad input

def one_error(paths, *, metadata=None, genes=WANTED) -> str:
    with pytest.raises(CalibrationError) as info:
        read_counts(paths, genes, metadata=metadata)
    return str(info.value)


def test_missing_path(tmp_path):
    message = one_error([tmp_path / "absent.h5ad"])
    assert str(tmp_path / "absent.h5ad") in message and "not found" in message


def test_missing_metadata(inputs, tmp_path):
    message = one_error(inputs["10x-h5"][0], metadata=tmp_path / "absent.tsv")
    assert str(tmp_path / "absent.tsv") in message and "not found" in message


def test_unknown_extension(tmp_path):
    path = tmp_path / "counts.xlsx"
    path.write_text("x")
    message = one_error([path])
    assert str(path) in message and "unknown" in message and ".h5ad" in message


def test_folder_without_10x_files(tmp_path):
    (tmp_path / "matrix.mtx").write_text("%%MatrixMarket matrix coordinate integer general\n")
    message = one_error([tmp_path])
    assert str(tmp_path) in message and "barcodes.tsv" in message


def test_not_hdf5(tmp_path):
    path = tmp_path / "fake.h5ad"
    path.write_text("not hdf5")
    assert str(path) in one_error([path])


def test_several_inputs_must_be_tables(inputs):
    message = one_error(inputs["h5ad-csr"][0] + inputs["umi-table"][0])
    assert str(inputs["h5ad-csr"][0][0]) in message and "UMI tables" in message


@pytest.mark.parametrize("text", ["", "gene\tc1\tc2\n", "c1\n"])
def test_empty_table(tmp_path, text):
    path = tmp_path / "empty.tsv"
    path.write_text(text)
    meta = tmp_path / "meta.tsv"
    meta.write_text("cell\tstage\nc1\tx\nc2\tx\n")
    message = one_error([path], metadata=meta)
    assert str(path) in message and "empty" in message


def test_empty_h5ad(ds, tmp_path):
    import anndata

    path = tmp_path / "empty.h5ad"
    anndata.AnnData(X=np.zeros((0, 3), dtype=np.float32)).write_h5ad(path)
    message = one_error([path])
    assert str(path) in message and "empty" in message


def write_table(path, values, cells=("c1", "c2")):
    table = pd.DataFrame(values, index=["Vegfa", "Actb"], columns=list(cells))
    table.to_csv(path, sep="\t", index_label="gene")
    return path


@pytest.fixture
def meta(tmp_path):
    path = tmp_path / "meta.tsv"
    path.write_text("cell\tstage\nc1\tearly\nc2\tlate\n")
    return path


def test_normalised_table(tmp_path, meta):
    path = write_table(tmp_path / "norm.tsv", [[1.0, 2.5], [3.0, 4.0]])
    message = one_error([path], metadata=meta)
    assert str(path) in message and "2.5" in message and "'c2'" in message
    assert "'Vegfa'" in message and "normalised or log-transformed" in message


def test_negative_table(tmp_path, meta):
    path = write_table(tmp_path / "neg.tsv", [[1, 2], [-3, 4]])
    message = one_error([path], metadata=meta)
    assert str(path) in message and "-3" in message and "'Actb'" in message


def test_text_in_a_table(tmp_path, meta):
    path = write_table(tmp_path / "text.tsv", [[1, "many"], [3, 4]])
    message = one_error([path], metadata=meta)
    assert str(path) in message and "'many'" in message


def test_log_normalised_h5ad_without_counts(ds, tmp_path):
    import anndata

    adata = anndata.AnnData(X=np.log1p(ds.counts.astype(np.float32)), obs=ds.obs,
                            var=pd.DataFrame(index=ds.genes))
    adata.write_h5ad(tmp_path / "lognorm.h5ad")
    message = one_error([tmp_path / "lognorm.h5ad"])
    assert str(tmp_path / "lognorm.h5ad") in message and "X" in message
    assert "raw UMI counts" in message


def test_scaled_h5ad_with_negative_values(ds, tmp_path):
    import anndata

    scaled = ds.counts.toarray().astype(np.float32)
    scaled -= scaled.mean(axis=0)
    anndata.AnnData(X=scaled, obs=ds.obs, var=pd.DataFrame(index=ds.genes)).write_h5ad(
        tmp_path / "scaled.h5ad")
    message = one_error([tmp_path / "scaled.h5ad"])
    assert str(tmp_path / "scaled.h5ad") in message and "negative" in message


def test_umi_table_without_metadata(inputs):
    message = one_error(inputs["umi-table"][0])
    assert str(inputs["umi-table"][0][0]) in message and "metadata" in message


def test_10x_without_metadata(inputs):
    assert str(inputs["10x-h5"][0][0]) in one_error(inputs["10x-h5"][0])


def test_metadata_missing_cells(ds, inputs, tmp_path):
    path = tmp_path / "short.tsv"
    ds.obs.iloc[5:].to_csv(path, sep="\t")
    message = one_error(inputs["umi-table"][0], metadata=path)
    assert str(path) in message and "5 data cells are not in it" in message
    assert f"{len(ds.obs) - 5} of {len(ds.obs)}" in message and "'c000000'" in message


def test_metadata_with_cells_the_data_lacks(ds, inputs, tmp_path):
    path = tmp_path / "long.csv"
    more = pd.concat([ds.obs, ds.obs.iloc[:2].set_axis(["x1", "x2"])])
    more.to_csv(path)
    message = one_error(inputs["10x-mtx-v3"][0], metadata=path)
    assert str(path) in message and "2 metadata cells are not in the data" in message


def test_duplicate_ids_in_metadata(ds, inputs, tmp_path):
    path = tmp_path / "dup.tsv"
    pd.concat([ds.obs, ds.obs.iloc[:1]]).to_csv(path, sep="\t")
    message = one_error(inputs["umi-table"][0], metadata=path)
    assert str(path) in message and "duplicate" in message and "'c000000'" in message


def test_duplicate_ids_across_batches(tmp_path, meta):
    first = write_table(tmp_path / "b1.tsv", [[1, 2], [3, 4]])
    second = write_table(tmp_path / "b2.tsv", [[1, 2], [3, 4]], cells=("c2", "c3"))
    message = one_error([first, second], metadata=meta)
    assert str(first) in message and "duplicate" in message and "'c2'" in message


def test_errors_print_nothing(tmp_path, meta, capsys):
    path = write_table(tmp_path / "norm.tsv.gz", [[1.0, 0.5], [3.0, 4.0]])
    with gzip.open(path, "rt") as handle:
        assert handle.readline().startswith("gene")
    one_error([path], metadata=meta)
    assert capsys.readouterr() == ("", "")


# ---------------------------------------------------------------- the synthetic dataset

def test_progress_bar_goes_to_stderr(inputs, capsys):
    read_counts(inputs["h5ad-csr"][0], WANTED, chunk_cells=100, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "chunk" in err


def test_synthetic_dataset_holds_its_planted_values():
    """20k cells in about a second; composition, PIC-seq pairs and mean expression (CP10K,
    singlets) agree with the planted values within sampling error."""
    start = time.perf_counter()
    ds = make_dataset(Planted(mice_per_stage=4, cells_per_mouse=2500, seed=1))
    assert time.perf_counter() - start < 2.0 and len(ds.obs) > 19_000
    obs, planted = ds.obs, ds.planted
    library = np.asarray(ds.counts.sum(axis=1)).ravel()
    assert 2_500 < np.median(library) < 4_000
    cp10k = ds.counts.multiply(1e4 / library[:, None]).tocsr()
    label_of = {label: t for t, label in CELL_TYPE_LABELS.items()}
    for label, stage in planted.stages.items():
        here = obs[obs["stage"] == label]
        per_mouse = here.groupby("mouse")["cell_type"].value_counts(normalize=True).unstack()
        assert (per_mouse.std() > 0).all()
        for cell_type, fraction in per_mouse.mean().items():
            assert abs(fraction - planted.composition[stage][label_of[cell_type]]) < 0.03
        neutrophils = here[here["cell_type"] == "Neutrophils"]
        bound = (neutrophils["pic_pair"] == "Tumor epithelial").mean()
        assert abs(bound - planted.bound_fraction[stage]) < 0.03
        for t in MODEL_TYPES:
            rows = ((obs["stage"] == label) & (obs["pic_pair"] == "")
                    & (obs["cell_type"] == CELL_TYPE_LABELS[t])).to_numpy()
            want = ds.expected_cp10k(t, stage)
            want = want[want >= 1.0]
            got = np.asarray(cp10k[rows][:, [ds.genes.index(g) for g in want.index]].mean(axis=0))
            np.testing.assert_allclose(got.ravel(), want.to_numpy(), rtol=0.25)
    early = ds.expected_cp10k("neutrophil", "early")
    advanced = ds.expected_cp10k("neutrophil", "advanced")
    assert advanced["Osm"] / early["Osm"] == pytest.approx(planted.ligand_fold["Osm"])
