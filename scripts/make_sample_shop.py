#!/usr/bin/env python3
"""Generate the built-in sample shop: a made-up hardware store with judged searches (demo data).

Why generated rather than hand-written: every grade follows written rules from product attributes,
so anyone can read why a pair got its label, change the shop, and get the same bytes back (seeded).
The shop is built so that word overlap misleads often enough that BM25 cannot get it all right:

* accessories share the product's words ("drill" vs "drill bit set", "lawn mower" vs "mower blade");
* shoppers use words the titles do not ("tap" for a faucet, "spanner", "weed eater", "smoke alarm");
* attributes are written differently in queries and titles ("20 volt" vs "20V", "50 foot" vs "50 ft.");
* other products share colours, brands, sizes or words ("extension cord" vs "extension ladder").

Labels (0..3) for a query that names a product kind and some attributes (brand, size, colour, ...):
  3 exact      same kind, every attribute the query names matches;
  2 relevant   same kind, exactly one named attribute differs (wrong size, colour, brand, ...);
  1 related    same kind with two or more attributes wrong, or an accessory/companion of the kind;
  0 irrelevant anything else, however many words it shares with the query.

Usage: python scripts/make_sample_shop.py [--out edgerank/samples]
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from dataclasses import dataclass
from pathlib import Path

SEED = 2016
PRODUCTS_PER_KIND = 8
QUERIES_PER_KIND = (2, 3)  # each kind gets 2 or 3 queries
DEV_SHARE = 0.27
OUT = Path(__file__).resolve().parents[1] / "edgerank" / "samples"


@dataclass(frozen=True)
class Kind:
    """One kind of product: how titles name it, how shoppers search for it, what varies."""

    key: str
    category: str
    names: tuple[str, ...]  # title names; each brand sticks to one of them
    searches: tuple[str, ...]  # what shoppers type, including words no title uses
    attrs: tuple[tuple[str, tuple[str, ...]], ...]  # attribute -> values, in title order
    brands: tuple[str, ...]
    describe: str  # description template over the attributes
    related: tuple[str, ...] = ()  # accessory/companion kinds (label 1)
    trailing: str = ""  # attribute written after the name, Home Depot style ("... Faucet in Chrome")
    extras: tuple[str, ...] = ()  # what some titles add ("Kit with 2 Batteries"); never changes a label


FINISHES = ("Chrome", "Brushed Nickel", "Matte Black", "Oil-Rubbed Bronze")

KINDS = (
    Kind(
        "drill",
        "power tools",
        ("Cordless Drill/Driver", "Drill Driver Kit", "Compact Drill"),
        ("drill", "cordless drill", "power drill", "drill driver"),
        (("voltage", ("12V", "18V", "20V")), ("chuck", ("3/8 in.", "1/2 in."))),
        ("DEWALT", "Milwaukee", "Makita", "RYOBI", "Bosch"),
        "{voltage} lithium-ion drill with a {chuck} keyless chuck, LED light and belt clip.",
        related=("drill_bits",),
        extras=("Kit with 2 Batteries and Charger", "(Tool Only)"),
    ),
    Kind(
        "drill_bits",
        "power tool accessories",
        ("Drill Bit Set", "Twist Drill Bit Set"),
        ("drill bits", "drill bit set", "bits for drill"),
        (("pieces", ("14-Piece", "21-Piece", "29-Piece")), ("coating", ("Titanium", "Cobalt", "Black Oxide"))),
        ("DEWALT", "Bosch", "Milwaukee", "Irwin"),
        "{pieces} {coating} bits, 1/16 to 1/2 in., for cordless drills and drivers.",
        related=("drill",),
    ),
    Kind(
        "circular_saw",
        "power tools",
        ("Circular Saw",),
        ("circular saw", "skill saw", "power saw"),
        (("power", ("20V Cordless", "Corded 15 Amp")), ("blade", ("6-1/2 in.", "7-1/4 in."))),
        ("DEWALT", "Makita", "SKIL", "RYOBI"),
        "{blade} blade, bevel cuts to 50 degrees, dust blower; {power}.",
        related=("saw_blade",),
        extras=("(Tool Only)", "with 24-Tooth Blade and Bag"),
    ),
    Kind(
        "saw_blade",
        "power tool accessories",
        ("Circular Saw Blade", "Framing Saw Blade"),
        ("saw blade", "circular saw blade"),
        (("size", ("6-1/2 in.", "7-1/4 in.", "10 in.")), ("teeth", ("24-Tooth", "40-Tooth", "60-Tooth"))),
        ("Diablo", "Freud", "DEWALT", "Irwin"),
        "{teeth} carbide blade for {size} circular saws, clean cuts in wood.",
        related=("circular_saw",),
    ),
    Kind(
        "sander",
        "power tools",
        ("Random Orbital Sander", "Orbital Sander"),
        ("sander", "orbital sander"),
        (("pad", ("5 in.", "6 in.")), ("power", ("Corded", "20V Cordless"))),
        ("DEWALT", "Makita", "BLACK+DECKER", "Bosch"),
        "{pad} hook-and-loop pad, variable speed and dust bag; {power}.",
        related=("sandpaper",),
    ),
    Kind(
        "sandpaper",
        "power tool accessories",
        ("Sanding Discs", "Sandpaper Sheets"),
        ("sandpaper", "sanding discs", "sanding paper"),
        (("grit", ("80-Grit", "120-Grit", "220-Grit")), ("pack", ("5-Pack", "25-Pack", "50-Pack"))),
        ("3M", "Diablo", "Gator"),
        "{grit} hook-and-loop discs for 5 in. random orbital sanders, {pack}.",
        related=("sander",),
    ),
    Kind(
        "hammer",
        "hand tools",
        ("Claw Hammer", "Framing Hammer"),
        ("hammer", "claw hammer"),
        (("weight", ("16 oz.", "20 oz.", "22 oz.")), ("handle", ("Fiberglass", "Steel", "Hickory"))),
        ("Estwing", "Stanley", "Husky", "Vaughan"),
        "{weight} head with a {handle} handle and smooth striking face.",
        related=("nails",),
    ),
    Kind(
        "nails",
        "fasteners",
        ("Common Nails", "Framing Nails"),
        ("nails", "framing nails"),
        (("size", ("2 in.", "3 in.", "3-1/2 in.")), ("finish", ("Hot-Dipped Galvanized", "Bright Steel"))),
        ("Grip-Rite", "Hillman", "Everbilt"),
        "{size} {finish} nails for framing, drive with a hammer or nailer.",
        related=("hammer",),
    ),
    Kind(
        "screws",
        "fasteners",
        ("Wood Screws", "Deck Screws"),
        ("wood screws", "screws", "deck screws"),
        (("size", ("#8 x 1-1/4 in.", "#8 x 2 in.", "#10 x 3 in.")), ("finish", ("Zinc", "Tan Coated"))),
        ("SPAX", "GRK", "Everbilt", "Hillman"),
        "{size} {finish} star-drive screws, drive with a drill or screwdriver.",
        related=("screwdriver",),
    ),
    Kind(
        "screwdriver",
        "hand tools",
        ("Screwdriver Set", "Multi-Bit Screwdriver"),
        ("screwdriver", "screwdriver set"),
        (("pieces", ("6-Piece", "10-Piece", "14-in-1")), ("grip", ("Cushion Grip", "Acetate Handle"))),
        ("Klein Tools", "Stanley", "Husky", "Craftsman"),
        "{pieces} Phillips and slotted set, {grip}.",
        related=("screws",),
    ),
    Kind(
        "wrench",
        "hand tools",
        ("Adjustable Wrench",),
        ("adjustable wrench", "wrench", "spanner", "adjustable spanner"),
        (("size", ("6 in.", "8 in.", "10 in.", "12 in.")), ("finish", ("Chrome", "Black Oxide"))),
        ("Crescent", "Husky", "Channellock", "Craftsman"),
        "{size} forged steel wrench, {finish} finish, wide jaw.",
    ),
    Kind(
        "tape_measure",
        "hand tools",
        ("Tape Measure",),
        ("tape measure", "measuring tape"),
        (("length", ("16 ft.", "25 ft.", "35 ft.")), ("colour", ("Yellow", "Black", "Red"))),
        ("Stanley", "Milwaukee", "Komelon", "DEWALT"),
        "{length} blade with magnetic hook, {colour} case.",
    ),
    Kind(
        "ladder",
        "ladders",
        ("Ladder",),
        ("ladder",),
        (
            ("height", ("6 ft.", "8 ft.", "24 ft.")),
            ("material", ("Aluminum", "Fiberglass")),
            ("style", ("Step", "Extension", "Multi-Position")),
        ),
        ("Werner", "Little Giant", "Gorilla Ladders", "Louisville Ladder"),
        "{height} {material} {style} ladder, 300 lb load capacity.",
        extras=("with Tool Tray", "Type IA 300 lb. Load Capacity"),
    ),
    Kind(
        "faucet",
        "plumbing",
        ("Pull-Down Kitchen Faucet", "Kitchen Mixer Tap", "Single-Handle Kitchen Faucet"),
        ("kitchen faucet", "kitchen tap", "sink faucet", "kitchen mixer tap"),
        (("finish", FINISHES),),
        ("Moen", "Delta", "Kohler", "Pfister", "Glacier Bay"),
        "Single-handle pull-down sprayer with spot-resistant {finish} finish.",
        related=("kitchen_sink",),
        trailing="finish",
        extras=("with Soap Dispenser", "and Deck Plate"),
    ),
    Kind(
        "kitchen_sink",
        "plumbing",
        ("Kitchen Sink", "Undermount Kitchen Sink"),
        ("kitchen sink", "sink"),
        (("material", ("Stainless Steel", "Granite Composite")), ("bowls", ("Single Bowl", "Double Bowl"))),
        ("Kohler", "Glacier Bay", "Elkay"),
        "{material} {bowls} sink, 33 in. x 22 in., faucet sold separately.",
        related=("faucet",),
    ),
    Kind(
        "shower_head",
        "plumbing",
        ("Shower Head", "Rain Shower Head", "Handheld Shower Head"),
        ("shower head", "showerhead", "rain shower"),
        (("flow", ("1.8 GPM", "2.5 GPM")), ("finish", FINISHES)),
        ("Moen", "Delta", "Kohler", "Speakman"),
        "Multi-spray head, {flow} flow, {finish} finish.",
        trailing="finish",
    ),
    Kind(
        "toilet_seat",
        "plumbing",
        ("Toilet Seat",),
        ("toilet seat", "toilet lid"),
        (("shape", ("Round", "Elongated")), ("colour", ("White", "Biscuit", "Black"))),
        ("Bemis", "Kohler", "American Standard", "Mayfair"),
        "{shape} slow-close seat, {colour}, easy clean hinges.",
    ),
    Kind(
        "light_bulb",
        "lighting",
        ("LED Light Bulb", "A19 LED Bulb"),
        ("light bulb", "led bulb", "light bulbs", "bulbs"),
        (
            ("watts", ("60W Equivalent", "75W Equivalent", "100W Equivalent")),
            ("light", ("Soft White", "Daylight")),
            ("pack", ("4-Pack", "8-Pack")),
        ),
        ("Philips", "GE", "Cree", "Feit Electric"),
        "{watts} {light} bulbs for lamps, ceiling fans and fixtures, {pack}.",
    ),
    Kind(
        "ceiling_fan",
        "lighting",
        ("Ceiling Fan", "Ceiling Fan with Light Kit"),
        ("ceiling fan", "fan"),
        (("size", ("44 in.", "52 in.", "60 in.")), ("finish", ("White", "Matte Black", "Brushed Nickel", "Bronze"))),
        ("Hunter", "Hampton Bay", "Minka-Aire", "Harbor Breeze"),
        "{size} indoor fan with remote control, {finish} finish.",
        related=("light_bulb",),
        trailing="finish",
        extras=("with Remote Control",),
    ),
    Kind(
        "ceiling_light",
        "lighting",
        ("Flush Mount Ceiling Light", "LED Ceiling Light"),
        ("ceiling light", "flush mount light"),
        (("size", ("11 in.", "13 in.")), ("finish", ("White", "Matte Black", "Brushed Nickel", "Bronze"))),
        ("Hampton Bay", "Commercial Electric", "Progress Lighting"),
        "{size} dimmable fixture with frosted glass shade, {finish} finish.",
        related=("light_bulb",),
        trailing="finish",
    ),
    Kind(
        "extension_cord",
        "electrical",
        ("Extension Cord", "Outdoor Extension Cord"),
        ("extension cord", "extension lead", "outdoor extension cord"),
        (("length", ("25 ft.", "50 ft.", "100 ft.")), ("colour", ("Orange", "Green", "Black"))),
        ("Husky", "Southwire", "HDX", "Woods"),
        "{length} 16/3 cord, {colour} jacket, lighted end.",
        related=("power_strip",),
    ),
    Kind(
        "power_strip",
        "electrical",
        ("Power Strip", "Surge Protector"),
        ("power strip", "surge protector"),
        (("outlets", ("6-Outlet", "8-Outlet", "12-Outlet")), ("colour", ("White", "Black"))),
        ("Belkin", "GE", "APC", "Tripp Lite"),
        "{outlets} strip with 6 ft. cord, {colour}, no extension cord needed.",
        related=("extension_cord",),
    ),
    Kind(
        "smoke_alarm",
        "safety",
        ("Smoke Alarm", "Smoke Detector"),
        ("smoke detector", "smoke alarm", "fire alarm"),
        (("power", ("Battery-Operated", "Hardwired")), ("pack", ("1-Pack", "2-Pack", "4-Pack"))),
        ("First Alert", "Kidde", "X-Sense"),
        "{power} photoelectric alarm with test button, {pack}.",
    ),
    Kind(
        "garden_hose",
        "garden",
        ("Garden Hose", "Heavy Duty Garden Hose"),
        ("garden hose", "water hose", "hose"),
        (("length", ("25 ft.", "50 ft.", "75 ft.", "100 ft.")), ("diameter", ("1/2 in.", "5/8 in."))),
        ("Flexzilla", "Gilmour", "Craftsman", "Dramm"),
        "{diameter} x {length} kink-resistant hose with brass fittings.",
        related=("hose_nozzle",),
        extras=("with Nozzle", "Drinking Water Safe"),
    ),
    Kind(
        "hose_nozzle",
        "garden",
        ("Hose Nozzle", "Spray Nozzle"),
        ("hose nozzle", "spray nozzle", "hose sprayer"),
        (("material", ("Metal", "Plastic")), ("patterns", ("7-Pattern", "10-Pattern"))),
        ("Gilmour", "Dramm", "Melnor", "Orbit"),
        "{patterns} {material} nozzle, fits every standard garden hose.",
        related=("garden_hose",),
    ),
    Kind(
        "lawn_mower",
        "outdoor power",
        ("Lawn Mower", "Walk-Behind Mower"),
        ("lawn mower", "lawnmower", "mower"),
        (("drive", ("Push", "Self-Propelled")), ("power", ("Gas", "40V Cordless")), ("deck", ("20 in.", "21 in."))),
        ("Honda", "Toro", "RYOBI", "EGO"),
        "{deck} {drive} mower, {power}, mulch, bag or side discharge.",
        related=("mower_blade",),
        extras=("with Bagger", "with Electric Start"),
    ),
    Kind(
        "mower_blade",
        "outdoor power",
        ("Mower Blade", "Replacement Mower Blade"),
        ("mower blade", "lawn mower blade"),
        (("size", ("20 in.", "21 in.", "42 in.")), ("style", ("Mulching", "High-Lift"))),
        ("Toro", "Oregon", "MaxPower", "Husqvarna"),
        "{style} blade for {size} deck lawn mowers, heat-treated steel.",
        related=("lawn_mower",),
    ),
    Kind(
        "string_trimmer",
        "outdoor power",
        ("String Trimmer",),
        ("string trimmer", "weed eater", "weed whacker", "trimmer"),
        (("power", ("Gas", "40V Cordless")), ("cut", ("13 in.", "15 in.", "17 in."))),
        ("EGO", "RYOBI", "Echo", "BLACK+DECKER"),
        "{cut} cutting path, {power}, bump feed head.",
    ),
    Kind(
        "paint",
        "paint",
        ("Paint and Primer", "Interior Paint"),
        ("paint", "wall paint", "house paint"),
        (
            ("colour", ("White", "Gray", "Navy Blue", "Beige")),
            ("sheen", ("Flat", "Eggshell", "Semi-Gloss")),
            ("size", ("1 gal.", "5 gal.")),
        ),
        ("Behr", "Glidden", "Valspar", "PPG"),
        "{size} of {sheen} {colour} paint and primer in one, low odor.",
        related=("paint_roller", "paint_brush"),
    ),
    Kind(
        "paint_roller",
        "paint",
        ("Paint Roller Kit", "Paint Roller Cover"),
        ("paint roller", "roller"),
        (("width", ("4 in.", "9 in.")), ("nap", ("3/8 in. Nap", "1/2 in. Nap"))),
        ("Purdy", "Wooster", "Shur-Line", "HDX"),
        "{width} roller with {nap} for interior paint on smooth walls.",
        related=("paint",),
    ),
    Kind(
        "paint_brush",
        "paint",
        ("Angled Sash Paint Brush", "Paint Brush"),
        ("paint brush", "paintbrush", "angled brush"),
        (("width", ("1-1/2 in.", "2 in.", "2-1/2 in.")), ("bristle", ("Nylon/Polyester", "Natural Bristle"))),
        ("Purdy", "Wooster", "Linzer"),
        "{width} brush with {bristle} for paint and stain on trim.",
        related=("paint",),
    ),
    Kind(
        "caulk",
        "paint",
        ("Silicone Caulk", "Kitchen and Bath Sealant"),
        ("caulk", "sealant", "silicone"),
        (("colour", ("White", "Clear", "Almond")), ("size", ("10.1 oz.", "2.8 oz."))),
        ("DAP", "GE", "Gorilla", "Red Devil"),
        "{size} {colour} waterproof sealant for tubs, sinks, faucets and windows.",
    ),
    Kind(
        "trash_can",
        "storage",
        ("Step Trash Can", "Kitchen Trash Can", "Garbage Can"),
        ("trash can", "garbage can", "waste bin", "kitchen bin"),
        (("capacity", ("13 gal.", "30 gal.", "45 gal.")), ("material", ("Stainless Steel", "Plastic"))),
        ("simplehuman", "Rubbermaid", "Sterilite", "HDX"),
        "{capacity} {material} can with lid, fingerprint-proof.",
        extras=("with Soft-Close Lid",),
    ),
    Kind(
        "mailbox",
        "hardware",
        ("Post Mount Mailbox", "Wall Mount Mailbox"),
        ("mailbox", "letter box", "post box"),
        (("colour", ("Black", "Bronze", "White")), ("size", ("Standard", "Large"))),
        ("Gibraltar Mailboxes", "Architectural Mailboxes", "Mail Boss"),
        "{size} galvanized steel mailbox, {colour}.",
    ),
    Kind(
        "door_knob",
        "hardware",
        ("Door Knob", "Door Handle"),
        ("door knob", "door handle", "doorknob"),
        (
            ("function", ("Privacy", "Passage", "Keyed Entry")),
            ("finish", ("Satin Nickel", "Matte Black", "Polished Brass")),
        ),
        ("Kwikset", "Schlage", "Defiant"),
        "{function} knob for interior doors, {finish} finish.",
        related=("door_hinge",),
        trailing="finish",
    ),
    Kind(
        "door_hinge",
        "hardware",
        ("Door Hinge",),
        ("door hinge", "hinges"),
        (
            ("size", ("3-1/2 in.", "4 in.")),
            ("finish", ("Satin Nickel", "Matte Black", "Polished Brass")),
            ("pack", ("2-Pack", "3-Pack")),
        ),
        ("Everbilt", "National Hardware", "Stanley"),
        "{size} hinges in {finish} to match your door knobs, {pack}.",
        related=("door_knob",),
    ),
    Kind(
        "padlock",
        "hardware",
        ("Padlock",),
        ("padlock", "lock"),
        (("style", ("Keyed", "Combination")), ("width", ("40 mm", "50 mm"))),
        ("Master Lock", "ABUS", "Brinks"),
        "{width} laminated steel {style} padlock, weatherproof.",
    ),
    Kind(
        "work_gloves",
        "safety",
        ("Work Gloves", "Leather Work Gloves"),
        ("work gloves", "gloves", "gardening gloves"),
        (("size", ("Medium", "Large", "X-Large")), ("material", ("Leather", "Nitrile-Coated", "Cotton"))),
        ("Firm Grip", "Wells Lamont", "Mechanix Wear"),
        "{material} gloves, size {size}, reinforced palm.",
    ),
    Kind(
        "flashlight",
        "electrical",
        ("LED Flashlight", "LED Torch"),
        ("flashlight", "torch", "led flashlight"),
        (("lumens", ("300 Lumens", "1000 Lumens")), ("power", ("Rechargeable", "AA Battery"))),
        ("Maglite", "Energizer", "Rayovac", "Husky"),
        "{lumens} aluminum light, {power}, water resistant.",
    ),
    Kind(
        "shop_vac",
        "cleaning",
        ("Wet/Dry Vacuum", "Wet Dry Shop Vac"),
        ("shop vac", "wet dry vac", "shop vacuum"),
        (("capacity", ("5 gal.", "12 gal.", "16 gal.")), ("hp", ("3.5 HP", "5.0 HP", "6.5 HP"))),
        ("RIDGID", "Shop-Vac", "Craftsman", "Vacmaster"),
        "{capacity} {hp} vacuum with hose and blower port.",
        extras=("with Cart", "with Detachable Blower"),
    ),
)
KIND = {k.key: k for k in KINDS}

# Ways shoppers write a value besides its lower-cased self; units are handled in `query_forms`.
SYNONYMS = {
    "Brushed Nickel": ("satin nickel",),
    "Stainless Steel": ("stainless",),
    "Matte Black": ("black",),
    "Oil-Rubbed Bronze": ("bronze",),
    "Hot-Dipped Galvanized": ("galvanized",),
    "Self-Propelled": ("self propelled",),
    "40V Cordless": ("cordless", "battery"),
    "20V Cordless": ("cordless", "20 volt cordless"),
    "Corded 15 Amp": ("corded",),
    "Battery-Operated": ("battery",),
    "Multi-Position": ("multi position",),
    "Keyed Entry": ("entry", "keyed"),
    "Nitrile-Coated": ("nitrile",),
    "Natural Bristle": ("natural",),
    "Nylon/Polyester": ("nylon",),
    "Granite Composite": ("granite",),
    "Polished Brass": ("brass",),
}
UNITS = (
    (r" in\.$", (" in", " inch")),
    (r" ft\.$", (" ft", " foot")),
    (r" gal\.$", (" gal", " gallon")),
    (r" oz\.$", (" oz", " ounce")),
    (r"^(\d+)v$", (r"\1v", r"\1 volt")),
    (r"w equivalent$", (" watt", "w")),
    (r"-(piece|pack|outlet|pattern|grit|tooth)$", (r" \1", r"-\1")),
)


@dataclass(frozen=True)
class Product:
    product_id: str
    kind: str
    brand: str
    values: dict
    title: str
    description: str


@dataclass(frozen=True)
class Query:
    text: str
    kind: str
    wants: dict  # attribute -> value the shopper asked for ("brand" included)


def query_forms(value: str) -> tuple[str, ...]:
    """How shoppers type an attribute value: lower case, units spelled out or not, common synonyms."""
    forms = [value.lower()]
    for pattern, replacements in UNITS:
        if re.search(pattern, forms[0]):
            forms = [re.sub(pattern, r, forms[0]) for r in replacements]
            break
    forms = [re.sub(r"\.(?!\d)", "", f) for f in forms]  # "3/8 in. nap" -> "3/8 in nap"; keeps "1.8 gpm"
    return tuple(forms) + SYNONYMS.get(value, ())


def make_products(rng: random.Random) -> list[Product]:
    products = []
    for kind in KINDS:
        seen = set()
        while len(seen) < PRODUCTS_PER_KIND:
            brand = rng.choice(kind.brands)
            values = {name: rng.choice(options) for name, options in kind.attrs}
            key = (brand, tuple(values.values()))
            if key in seen:
                continue
            seen.add(key)
            name = kind.names[kind.brands.index(brand) % len(kind.names)]
            lead = [v for a, v in values.items() if a != kind.trailing]
            title = " ".join([brand, *lead, name]) + (f" in {values[kind.trailing]}" if kind.trailing else "")
            if kind.extras and rng.random() < 0.4:
                title += " " + rng.choice(kind.extras)
            description = kind.describe.format(**values)
            products.append(
                Product(
                    f"SP{len(products) + 1:04d}",
                    kind.key,
                    brand,
                    dict(values, brand=brand),
                    title,
                    description[0].upper() + description[1:],
                )
            )
    return products


def label(query: Query, product: Product) -> int:
    """The grading rules from the module docstring, in code."""
    if product.kind == query.kind:
        wrong = sum(product.values[a] != v for a, v in query.wants.items())
        return 3 if wrong == 0 else 2 if wrong == 1 else 1
    return 1 if product.kind in KIND[query.kind].related else 0


def make_query(kind: Kind, target: Product, rng: random.Random) -> Query:
    """Name the kind (maybe by a synonym) and 0-2 of the target's attributes, sometimes its brand."""
    attrs = [a for a, _ in kind.attrs]
    k = rng.choices((0, 1, 2), weights=(1, 4, 4))[0]
    wanted = rng.sample(attrs, min(k, len(attrs)))
    if rng.random() < 0.2:
        wanted.append("brand")
    parts = [rng.choice(query_forms(target.values[a])) if a != "brand" else target.brand.lower() for a in wanted]
    name = rng.choice(kind.searches)
    words = [*parts, name] if rng.random() < 0.7 else [name, *parts]
    return Query(" ".join(words), kind.key, {a: target.values[a] for a in wanted})


def tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def candidates(query: Query, products: list[Product], rng: random.Random) -> list[Product]:
    """8-12 products (more when a query has many matches): exact matches, near misses, accessories, same-category other kinds, products
    that share words with the query but not its meaning, and unrelated filler."""
    kind = KIND[query.kind]
    size = rng.randint(8, 12)
    same = [p for p in products if p.kind == query.kind]
    exact = [p for p in same if label(query, p) == 3]
    near = [p for p in same if label(query, p) < 3]
    picked = rng.sample(exact, min(len(exact), 3)) + rng.sample(near, min(len(near), rng.randint(2, 5)))
    related = [p for p in products if p.kind in kind.related]
    picked += rng.sample(related, min(len(related), rng.randint(1, 3)))
    others = [p for p in products if p.kind != query.kind and p.kind not in kind.related]
    words = tokens(query.text)
    overlap = sorted(others, key=lambda p: (-len(words & tokens(p.title)), rng.random()))
    picked += [p for p in overlap[: rng.randint(2, 4)] if words & tokens(p.title)]
    category = [p for p in others if KIND[p.kind].category == kind.category and p not in picked]
    picked += rng.sample(category, min(len(category), rng.randint(0, 2)))
    rest = [p for p in others if p not in picked]
    picked += rng.sample(rest, max(0, size - len(picked)))
    rng.shuffle(picked)
    return picked


def make_queries(products: list[Product], rng: random.Random) -> list[Query]:
    queries, seen = [], set()
    for kind in KINDS:
        same = [p for p in products if p.kind == kind.key]
        for _ in range(rng.randint(*QUERIES_PER_KIND)):
            for _attempt in range(20):  # a fresh wording, never a repeat of another query
                q = make_query(kind, rng.choice(same), rng)
                if q.text not in seen:
                    seen.add(q.text)
                    queries.append(q)
                    break
    return queries


def judged_rows(queries: list[Query], products: list[Product], rng: random.Random) -> list[dict]:
    rows = []
    for i, q in enumerate(queries, start=1):
        for p in candidates(q, products, rng):
            rows.append(
                {
                    "query_id": f"shop-q{i:03d}",
                    "query": q.text,
                    "product_id": p.product_id,
                    "product_title": p.title,
                    "product_description": p.description,
                    "relevance": label(q, p),
                }
            )
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def generate(out: Path, seed: int = SEED) -> dict[str, int]:
    """Write shop_products.csv, shop_train.csv and shop_dev.csv into ``out``; returns counts."""
    rng = random.Random(seed)
    products = make_products(rng)
    queries = make_queries(products, rng)
    rows = judged_rows(queries, products, rng)
    order = list(range(len(queries)))
    rng.shuffle(order)
    dev_ids = {f"shop-q{i + 1:03d}" for i in order[: round(DEV_SHARE * len(queries))]}
    out.mkdir(parents=True, exist_ok=True)
    write_csv(
        out / "shop_products.csv",
        [
            {"product_id": p.product_id, "product_title": p.title, "product_description": p.description}
            for p in products
        ],
    )
    write_csv(out / "shop_train.csv", [r for r in rows if r["query_id"] not in dev_ids])
    write_csv(out / "shop_dev.csv", [r for r in rows if r["query_id"] in dev_ids])
    return {"products": len(products), "queries": len(queries), "dev_queries": len(dev_ids), "rows": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default: {OUT})")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    counts = generate(args.out, args.seed)
    print(", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()), f"written to {args.out}")


if __name__ == "__main__":
    main()
