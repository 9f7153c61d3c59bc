"""The axes' ligand-receptor pairs checked against liana's mouse consensus resource, where
liana is installed (it ships the resource inside its wheel, so this works offline)."""

import importlib.util

__all__ = ["check_pairs", "RESOURCE"]

#: liana's resource of mouse ligand-receptor pairs
RESOURCE = "mouseconsensus"


def check_pairs(axes) -> dict:
    """``{"resource": ..., "pairs": [{axis, ligand, receptor, found, as}]}``: each pair is
    ``found`` exactly (its receptor subunits are one of the resource's receptors for the
    ligand), ``within`` a larger complex of the resource, or ``missing``. ``{"resource":
    None, ...}`` when liana is not installed."""
    if importlib.util.find_spec("liana") is None:
        return {"resource": None, "pairs": [],
                "note": "liana is not installed: the pairs were not checked"}
    from liana.resource import select_resource

    table = select_resource(RESOURCE)
    receptors: dict[str, list[frozenset]] = {}
    names: dict[tuple[str, frozenset], str] = {}
    for lig, rec in zip(table["ligand"], table["receptor"]):
        units = frozenset(str(rec).split("_"))
        receptors.setdefault(str(lig), []).append(units)
        names[(str(lig), units)] = str(rec)
    out = []
    for axis in axes:
        for ligand, subunits in axis.pairs:
            want = frozenset(subunits)
            listed = receptors.get(ligand, [])
            if want in listed:
                found, as_ = "found", names[(ligand, want)]
            else:
                bigger = [u for u in listed if want < u]
                found = "within" if bigger else "missing"
                as_ = names[(ligand, bigger[0])] if bigger else ""
            out.append({"axis": axis.name, "ligand": ligand, "receptor": "_".join(subunits),
                        "found": found, "as": as_})
    return {"resource": RESOURCE, "pairs": out}
