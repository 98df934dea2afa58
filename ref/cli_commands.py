"""Sub-commands of the golden model: quantize, mac, rbits, demo (placeholder until filled)."""


def register(sub):
    p = sub.add_parser("rbits", help="random bits needed for SR in a chain of length n")
    p.add_argument("--n", type=int, required=True, help="chain length (number of MACs)")
    p.set_defaults(func=_rbits)


def _rbits(args):
    from .config import required_rbits

    print(required_rbits(args.n))
    return 0
