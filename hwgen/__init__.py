"""srmac hardware generators (Amaranth 0.5): SR MAC circuits, Verilog export, cocotb regression.

* :mod:`hwgen.mac` -- ``MacUnit(cfg, rand="port"|"prng", seed=0, pipeline=0)``, the streaming MAC;
* :mod:`hwgen.datapath` -- ``AccumulateStep``, the one-cycle accumulation ``round(z + a*b)``;
* sub-blocks: :mod:`hwgen.unpack`, :mod:`hwgen.lzc`, :mod:`hwgen.shift`,
  :mod:`hwgen.rounding`, :mod:`hwgen.pack`, :mod:`hwgen.prng`;
* :mod:`hwgen.export` -- ``to_verilog(unit, name)`` and ``sidecar(unit, name)``;
* :mod:`hwgen.cli` -- ``srmac verilog`` and ``srmac regress``;
* :mod:`hwgen.vectors`, :mod:`hwgen.regress` -- stimulus and the cocotb/Icarus matrix.

See docs/hardware.md. Importing this package does not import Amaranth.
"""
