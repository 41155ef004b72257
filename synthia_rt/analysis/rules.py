"""Rule tables behind the local analyzer's recommendations and palettes.

Classic image-consulting rules of thumb, kept as data so they can be reviewed (and
translated: ``N_`` marks them for the gettext catalogs) without touching the measuring code in :mod:`synthia_rt.analysis.local`.
"""

from __future__ import annotations

from synthia_rt.i18n import N_

Rec = dict[str, str]

SHAPE_RULES: dict[str, list[Rec]] = {
    "oval": [
        {
            "category": "hairstyle",
            "title": N_("Most cuts work"),
            "detail": N_("Balanced proportions: try a textured lob or long layers."),
        },
        {
            "category": "eyewear",
            "title": N_("Wide frames"),
            "detail": N_("Frames as wide as the broadest part of the face keep the balance."),
        },
    ],
    "round": [
        {
            "category": "hairstyle",
            "title": N_("Add height"),
            "detail": N_("Volume at the crown and long layers below the chin lengthen the face."),
        },
        {
            "category": "eyewear",
            "title": N_("Angular frames"),
            "detail": N_("Rectangular or square frames add definition."),
        },
    ],
    "square": [
        {
            "category": "hairstyle",
            "title": N_("Soften the jaw"),
            "detail": N_("Soft waves and side parts that fall past the jawline."),
        },
        {
            "category": "eyewear",
            "title": N_("Round or oval frames"),
            "detail": N_("Curved frames soften a strong jaw."),
        },
    ],
    "heart": [
        {
            "category": "hairstyle",
            "title": N_("Width at the chin"),
            "detail": N_("Chin-length bobs and side-swept fringes balance a wider forehead."),
        },
        {
            "category": "eyewear",
            "title": N_("Bottom-heavy frames"),
            "detail": N_("Aviators or light rimless frames."),
        },
    ],
    "diamond": [
        {
            "category": "hairstyle",
            "title": N_("Fullness at forehead and chin"),
            "detail": N_("Fringes and chin-length volume balance wide cheekbones."),
        },
        {
            "category": "eyewear",
            "title": N_("Cat-eye or oval frames"),
            "detail": N_("Browline details widen the forehead visually."),
        },
    ],
    "oblong": [
        {
            "category": "hairstyle",
            "title": N_("Add width"),
            "detail": N_("Curls or waves at the sides and a fringe shorten the face."),
        },
        {
            "category": "eyewear",
            "title": N_("Deep frames"),
            "detail": N_("Tall, decorative frames break up the length."),
        },
    ],
    "triangle": [
        {
            "category": "hairstyle",
            "title": N_("Volume on top"),
            "detail": N_("Layers and volume at the temples balance a wider jaw."),
        },
        {
            "category": "eyewear",
            "title": N_("Top-heavy frames"),
            "detail": N_("Browline or cat-eye frames widen the upper face."),
        },
    ],
}

UNDERTONE_RULES: dict[str, list[Rec]] = {
    "warm": [
        {
            "category": "colors",
            "title": N_("Earthy warm colours"),
            "detail": N_("Olive, camel, coral, terracotta and warm ivory."),
        },
        {
            "category": "accessories",
            "title": N_("Gold tones"),
            "detail": N_("Yellow gold, brass and copper jewellery."),
        },
        {
            "category": "makeup",
            "title": N_("Peach and bronze"),
            "detail": N_("Peach blush, bronze eyeshadow, coral lips."),
        },
    ],
    "cool": [
        {
            "category": "colors",
            "title": N_("Blue-based colours"),
            "detail": N_("Navy, emerald, berry, icy pink and pure white."),
        },
        {
            "category": "accessories",
            "title": N_("Silver tones"),
            "detail": N_("Silver, platinum and white gold."),
        },
        {
            "category": "makeup",
            "title": N_("Rose and berry"),
            "detail": N_("Rosy blush, taupe or plum eyeshadow, berry lips."),
        },
    ],
    "neutral": [
        {
            "category": "colors",
            "title": N_("Balanced colours"),
            "detail": N_("Soft white, jade, dusty pink and medium blue."),
        },
        {
            "category": "accessories",
            "title": N_("Mixed metals"),
            "detail": N_("Both gold and silver work; rose gold bridges them."),
        },
        {
            "category": "makeup",
            "title": N_("Soft neutrals"),
            "detail": N_("Nude-pink lips and a soft brown eyeliner."),
        },
    ],
    "olive": [
        {
            "category": "colors",
            "title": N_("Rich muted colours"),
            "detail": N_("Teal, burgundy, mustard, forest green and cream."),
        },
        {
            "category": "accessories",
            "title": N_("Antique gold"),
            "detail": N_("Antique gold and bronze; avoid very bright silver."),
        },
        {
            "category": "makeup",
            "title": N_("Warm neutrals"),
            "detail": N_("Golden-neutral foundation, brick and mauve lips."),
        },
    ],
}

_P = list[dict[str, str]]


def _swatches(*pairs: str) -> _P:
    return [{"name": pairs[i], "hex": pairs[i + 1]} for i in range(0, len(pairs), 2)]


PALETTES: dict[str, tuple[_P, _P]] = {
    "light_spring": (
        _swatches(
            N_("Peach"),
            "#FFCBA4",
            N_("Warm Ivory"),
            "#FFF5DC",
            N_("Light Coral"),
            "#F08080",
            N_("Aqua"),
            "#7FD8D4",
            N_("Butter Yellow"),
            "#FFE48A",
            N_("Periwinkle"),
            "#A4B4F0",
            N_("Camel"),
            "#C19A6B",
            N_("Mint"),
            "#A8E6C0",
        ),
        _swatches(N_("Black"), "#000000", N_("Burgundy"), "#800020", N_("Charcoal"), "#36454F"),
    ),
    "warm_spring": (
        _swatches(
            N_("Coral"),
            "#FF7F50",
            N_("Golden Yellow"),
            "#FFC72C",
            N_("Warm Turquoise"),
            "#30C5B7",
            N_("Tomato Red"),
            "#E8472F",
            N_("Camel"),
            "#C19A6B",
            N_("Cream"),
            "#FFFDD0",
            N_("Leaf Green"),
            "#6BA539",
            N_("Apricot"),
            "#FBCEB1",
        ),
        _swatches(N_("Black"), "#000000", N_("Icy Pink"), "#F5D5E0", N_("Cool Grey"), "#8C92AC"),
    ),
    "clear_spring": (
        _swatches(
            N_("Bright Coral"),
            "#FF6F61",
            N_("Kelly Green"),
            "#4CBB17",
            N_("Turquoise"),
            "#40E0D0",
            N_("Poppy Red"),
            "#E35335",
            N_("Bright Navy"),
            "#1F3A93",
            N_("Sunflower"),
            "#FFC512",
            N_("Warm White"),
            "#FAF7F0",
            N_("Hot Pink"),
            "#FF69B4",
        ),
        _swatches(
            N_("Dusty Rose"), "#DCAE96", N_("Muted Olive"), "#7C7A4D", N_("Taupe"), "#8B8589"
        ),
    ),
    "light_summer": (
        _swatches(
            N_("Powder Blue"),
            "#B0E0E6",
            N_("Lavender"),
            "#C8B7E8",
            N_("Soft Pink"),
            "#F4C2C2",
            N_("Mint"),
            "#AAF0D1",
            N_("Soft White"),
            "#F5F5F0",
            N_("Periwinkle"),
            "#9FA8DA",
            N_("Rose"),
            "#E8A0B4",
            N_("Light Grey"),
            "#C9CCD1",
        ),
        _swatches(N_("Black"), "#000000", N_("Orange"), "#FF8C00", N_("Mustard"), "#E1AD01"),
    ),
    "cool_summer": (
        _swatches(
            N_("Raspberry"),
            "#C72C48",
            N_("Cool Blue"),
            "#5B7DB1",
            N_("Soft Fuchsia"),
            "#D45D9E",
            N_("Slate Grey"),
            "#708090",
            N_("Spruce"),
            "#3E7C74",
            N_("Icy Lavender"),
            "#D8D0F0",
            N_("Soft White"),
            "#F5F5F0",
            N_("Plum"),
            "#8E4585",
        ),
        _swatches(N_("Orange"), "#FF8C00", N_("Camel"), "#C19A6B", N_("Golden Yellow"), "#FFC72C"),
    ),
    "soft_summer": (
        _swatches(
            N_("Dusty Rose"),
            "#DCAE96",
            N_("Sage"),
            "#9CAF88",
            N_("Slate Blue"),
            "#6A7BA2",
            N_("Mauve"),
            "#B784A7",
            N_("Taupe"),
            "#8B8589",
            N_("Soft Teal"),
            "#5F9EA0",
            N_("Pewter"),
            "#8E9196",
            N_("Rose Brown"),
            "#BC8F8F",
        ),
        _swatches(N_("Black"), "#000000", N_("Bright Orange"), "#FF5F1F", N_("Lemon"), "#FFF44F"),
    ),
    "soft_autumn": (
        _swatches(
            N_("Olive"),
            "#808000",
            N_("Camel"),
            "#C19A6B",
            N_("Salmon"),
            "#E9967A",
            N_("Moss"),
            "#8A9A5B",
            N_("Soft Teal"),
            "#5F9EA0",
            N_("Warm Taupe"),
            "#AF8F6F",
            N_("Terracotta"),
            "#E2725B",
            N_("Khaki"),
            "#C3B091",
        ),
        _swatches(N_("Black"), "#000000", N_("Icy Blue"), "#D6ECEF", N_("Hot Pink"), "#FF69B4"),
    ),
    "warm_autumn": (
        _swatches(
            N_("Rust"),
            "#B7410E",
            N_("Mustard"),
            "#E1AD01",
            N_("Olive"),
            "#808000",
            N_("Burnt Orange"),
            "#CC5500",
            N_("Teal"),
            "#008080",
            N_("Chocolate"),
            "#7B3F00",
            N_("Cream"),
            "#FFFDD0",
            N_("Pumpkin"),
            "#FF7518",
        ),
        _swatches(N_("Icy Pink"), "#F5D5E0", N_("Cool Grey"), "#8C92AC", N_("Fuchsia"), "#FF00FF"),
    ),
    "deep_autumn": (
        _swatches(
            N_("Burgundy"),
            "#800020",
            N_("Forest Green"),
            "#228B22",
            N_("Dark Chocolate"),
            "#3D1C02",
            N_("Burnt Orange"),
            "#CC5500",
            N_("Deep Teal"),
            "#014D4E",
            N_("Mustard"),
            "#E1AD01",
            N_("Tomato Red"),
            "#E8472F",
            N_("Aubergine"),
            "#472C4C",
        ),
        _swatches(
            N_("Pastel Pink"), "#FFD1DC", N_("Powder Blue"), "#B0E0E6", N_("Light Grey"), "#D3D3D3"
        ),
    ),
    "deep_winter": (
        _swatches(
            N_("Black"),
            "#000000",
            N_("True Red"),
            "#BF0A30",
            N_("Emerald"),
            "#009B77",
            N_("Sapphire"),
            "#0F52BA",
            N_("Pure White"),
            "#FFFFFF",
            N_("Deep Plum"),
            "#580F41",
            N_("Charcoal"),
            "#36454F",
            N_("Icy Pink"),
            "#F5D5E0",
        ),
        _swatches(N_("Camel"), "#C19A6B", N_("Peach"), "#FFCBA4", N_("Mustard"), "#E1AD01"),
    ),
    "cool_winter": (
        _swatches(
            N_("Icy Blue"),
            "#D6ECEF",
            N_("Royal Blue"),
            "#4169E1",
            N_("Fuchsia"),
            "#FF00FF",
            N_("Pine Green"),
            "#01796F",
            N_("Pure White"),
            "#FFFFFF",
            N_("Charcoal"),
            "#36454F",
            N_("Cherry"),
            "#DE3163",
            N_("Amethyst"),
            "#9966CC",
        ),
        _swatches(N_("Orange"), "#FF8C00", N_("Camel"), "#C19A6B", N_("Olive"), "#808000"),
    ),
    "clear_winter": (
        _swatches(
            N_("Hot Pink"),
            "#FF69B4",
            N_("Cobalt"),
            "#0047AB",
            N_("Emerald"),
            "#009B77",
            N_("Lemon"),
            "#FFF44F",
            N_("Pure White"),
            "#FFFFFF",
            N_("Black"),
            "#000000",
            N_("True Red"),
            "#BF0A30",
            N_("Violet"),
            "#8F00FF",
        ),
        _swatches(
            N_("Dusty Rose"), "#DCAE96", N_("Khaki"), "#C3B091", N_("Muted Olive"), "#7C7A4D"
        ),
    ),
}

# The chromatic result's recommendations: clothing, makeup and hair colour by season, the
# jewellery metals by undertone.
SEASON_RULES: dict[str, list[Rec]] = {
    "spring": [
        {
            "category": "clothing",
            "title": N_("Light, warm and clear"),
            "detail": N_("Coral, warm turquoise and camel; ivory instead of stark white."),
        },
        {
            "category": "makeup",
            "title": N_("Fresh and peachy"),
            "detail": N_("Peach blush, golden-brown eyeliner and coral or warm pink lips."),
        },
        {
            "category": "hair_color",
            "title": N_("Golden tones"),
            "detail": N_("Honey, strawberry blonde or light golden brown; avoid ash."),
        },
    ],
    "summer": [
        {
            "category": "clothing",
            "title": N_("Soft and cool"),
            "detail": N_("Dusty blue, lavender, rose and soft grey; soft white instead of black."),
        },
        {
            "category": "makeup",
            "title": N_("Rosy and muted"),
            "detail": N_("Rose blush, taupe or grey-brown eyeliner and berry or mauve lips."),
        },
        {
            "category": "hair_color",
            "title": N_("Ash tones"),
            "detail": N_("Ash blonde, cool light brown or soft highlights; avoid brassy gold."),
        },
    ],
    "autumn": [
        {
            "category": "clothing",
            "title": N_("Rich and earthy"),
            "detail": N_("Olive, rust, mustard, teal and chocolate; cream instead of white."),
        },
        {
            "category": "makeup",
            "title": N_("Warm and bronzed"),
            "detail": N_("Bronzer, brown or olive eyeliner and brick or terracotta lips."),
        },
        {
            "category": "hair_color",
            "title": N_("Copper and chestnut"),
            "detail": N_("Auburn, copper or warm chestnut; avoid flat ash or blue-black."),
        },
    ],
    "winter": [
        {
            "category": "clothing",
            "title": N_("Clear and contrasted"),
            "detail": N_("Black and pure white, jewel tones like emerald, sapphire and true red."),
        },
        {
            "category": "makeup",
            "title": N_("Defined and cool"),
            "detail": N_("Black or charcoal eyeliner, cool pink blush and red or fuchsia lips."),
        },
        {
            "category": "hair_color",
            "title": N_("Deep cool tones"),
            "detail": N_("Espresso, blue-black or cool dark brown; avoid golden highlights."),
        },
    ],
}

METAL_RULES: dict[str, list[Rec]] = {
    "warm": [
        {
            "category": "jewelry",
            "title": N_("Yellow gold"),
            "detail": N_("Yellow gold, brass, copper and bronze."),
        }
    ],
    "cool": [
        {
            "category": "jewelry",
            "title": N_("Silver and platinum"),
            "detail": N_("Silver, platinum and white gold."),
        }
    ],
    "neutral": [
        {
            "category": "jewelry",
            "title": N_("Any metal"),
            "detail": N_("Gold and silver both work; rose gold bridges them."),
        }
    ],
    "olive": [
        {
            "category": "jewelry",
            "title": N_("Antique metals"),
            "detail": N_("Antique gold, bronze and brushed silver rather than bright metals."),
        }
    ],
}
