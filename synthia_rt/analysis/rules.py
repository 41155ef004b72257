"""Rule tables behind the local analyzer's recommendations and palettes.

Classic image-consulting rules of thumb, kept as data so they can be reviewed (and
translated) without touching the measuring code in :mod:`synthia_rt.analysis.local`.
"""

from __future__ import annotations

Rec = dict[str, str]

SHAPE_RULES: dict[str, list[Rec]] = {
    "oval": [
        {"category": "hairstyle", "title": "Most cuts work", "detail": "Balanced proportions: try a textured lob or long layers."},
        {"category": "eyewear", "title": "Wide frames", "detail": "Frames as wide as the broadest part of the face keep the balance."},
    ],
    "round": [
        {"category": "hairstyle", "title": "Add height", "detail": "Volume at the crown and long layers below the chin lengthen the face."},
        {"category": "eyewear", "title": "Angular frames", "detail": "Rectangular or square frames add definition."},
    ],
    "square": [
        {"category": "hairstyle", "title": "Soften the jaw", "detail": "Soft waves and side parts that fall past the jawline."},
        {"category": "eyewear", "title": "Round or oval frames", "detail": "Curved frames soften a strong jaw."},
    ],
    "heart": [
        {"category": "hairstyle", "title": "Width at the chin", "detail": "Chin-length bobs and side-swept fringes balance a wider forehead."},
        {"category": "eyewear", "title": "Bottom-heavy frames", "detail": "Aviators or light rimless frames."},
    ],
    "diamond": [
        {"category": "hairstyle", "title": "Fullness at forehead and chin", "detail": "Fringes and chin-length volume balance wide cheekbones."},
        {"category": "eyewear", "title": "Cat-eye or oval frames", "detail": "Browline details widen the forehead visually."},
    ],
    "oblong": [
        {"category": "hairstyle", "title": "Add width", "detail": "Curls or waves at the sides and a fringe shorten the face."},
        {"category": "eyewear", "title": "Deep frames", "detail": "Tall, decorative frames break up the length."},
    ],
    "triangle": [
        {"category": "hairstyle", "title": "Volume on top", "detail": "Layers and volume at the temples balance a wider jaw."},
        {"category": "eyewear", "title": "Top-heavy frames", "detail": "Browline or cat-eye frames widen the upper face."},
    ],
}

UNDERTONE_RULES: dict[str, list[Rec]] = {
    "warm": [
        {"category": "colors", "title": "Earthy warm colours", "detail": "Olive, camel, coral, terracotta and warm ivory."},
        {"category": "accessories", "title": "Gold tones", "detail": "Yellow gold, brass and copper jewellery."},
        {"category": "makeup", "title": "Peach and bronze", "detail": "Peach blush, bronze eyeshadow, coral lips."},
    ],
    "cool": [
        {"category": "colors", "title": "Blue-based colours", "detail": "Navy, emerald, berry, icy pink and pure white."},
        {"category": "accessories", "title": "Silver tones", "detail": "Silver, platinum and white gold."},
        {"category": "makeup", "title": "Rose and berry", "detail": "Rosy blush, taupe or plum eyeshadow, berry lips."},
    ],
    "neutral": [
        {"category": "colors", "title": "Balanced colours", "detail": "Soft white, jade, dusty pink and medium blue."},
        {"category": "accessories", "title": "Mixed metals", "detail": "Both gold and silver work; rose gold bridges them."},
        {"category": "makeup", "title": "Soft neutrals", "detail": "Nude-pink lips and a soft brown eyeliner."},
    ],
    "olive": [
        {"category": "colors", "title": "Rich muted colours", "detail": "Teal, burgundy, mustard, forest green and cream."},
        {"category": "accessories", "title": "Antique gold", "detail": "Antique gold and bronze; avoid very bright silver."},
        {"category": "makeup", "title": "Warm neutrals", "detail": "Golden-neutral foundation, brick and mauve lips."},
    ],
}

_P = list[dict[str, str]]


def _swatches(*pairs: str) -> _P:
    return [{"name": pairs[i], "hex": pairs[i + 1]} for i in range(0, len(pairs), 2)]


PALETTES: dict[str, tuple[_P, _P]] = {
    "light_spring": (_swatches("Peach", "#FFCBA4", "Warm Ivory", "#FFF5DC", "Light Coral", "#F08080", "Aqua", "#7FD8D4", "Butter Yellow", "#FFE48A", "Periwinkle", "#A4B4F0", "Camel", "#C19A6B", "Mint", "#A8E6C0"), _swatches("Black", "#000000", "Burgundy", "#800020", "Charcoal", "#36454F")),
    "warm_spring": (_swatches("Coral", "#FF7F50", "Golden Yellow", "#FFC72C", "Warm Turquoise", "#30C5B7", "Tomato Red", "#E8472F", "Camel", "#C19A6B", "Cream", "#FFFDD0", "Leaf Green", "#6BA539", "Apricot", "#FBCEB1"), _swatches("Black", "#000000", "Icy Pink", "#F5D5E0", "Cool Grey", "#8C92AC")),
    "clear_spring": (_swatches("Bright Coral", "#FF6F61", "Kelly Green", "#4CBB17", "Turquoise", "#40E0D0", "Poppy Red", "#E35335", "Bright Navy", "#1F3A93", "Sunflower", "#FFC512", "Warm White", "#FAF7F0", "Hot Pink", "#FF69B4"), _swatches("Dusty Rose", "#DCAE96", "Muted Olive", "#7C7A4D", "Taupe", "#8B8589")),
    "light_summer": (_swatches("Powder Blue", "#B0E0E6", "Lavender", "#C8B7E8", "Soft Pink", "#F4C2C2", "Mint", "#AAF0D1", "Soft White", "#F5F5F0", "Periwinkle", "#9FA8DA", "Rose", "#E8A0B4", "Light Grey", "#C9CCD1"), _swatches("Black", "#000000", "Orange", "#FF8C00", "Mustard", "#E1AD01")),
    "cool_summer": (_swatches("Raspberry", "#C72C48", "Cool Blue", "#5B7DB1", "Soft Fuchsia", "#D45D9E", "Slate Grey", "#708090", "Spruce", "#3E7C74", "Icy Lavender", "#D8D0F0", "Soft White", "#F5F5F0", "Plum", "#8E4585"), _swatches("Orange", "#FF8C00", "Camel", "#C19A6B", "Golden Yellow", "#FFC72C")),
    "soft_summer": (_swatches("Dusty Rose", "#DCAE96", "Sage", "#9CAF88", "Slate Blue", "#6A7BA2", "Mauve", "#B784A7", "Taupe", "#8B8589", "Soft Teal", "#5F9EA0", "Pewter", "#8E9196", "Rose Brown", "#BC8F8F"), _swatches("Black", "#000000", "Bright Orange", "#FF5F1F", "Lemon", "#FFF44F")),
    "soft_autumn": (_swatches("Olive", "#808000", "Camel", "#C19A6B", "Salmon", "#E9967A", "Moss", "#8A9A5B", "Soft Teal", "#5F9EA0", "Warm Taupe", "#AF8F6F", "Terracotta", "#E2725B", "Khaki", "#C3B091"), _swatches("Black", "#000000", "Icy Blue", "#D6ECEF", "Hot Pink", "#FF69B4")),
    "warm_autumn": (_swatches("Rust", "#B7410E", "Mustard", "#E1AD01", "Olive", "#808000", "Burnt Orange", "#CC5500", "Teal", "#008080", "Chocolate", "#7B3F00", "Cream", "#FFFDD0", "Pumpkin", "#FF7518"), _swatches("Icy Pink", "#F5D5E0", "Cool Grey", "#8C92AC", "Fuchsia", "#FF00FF")),
    "deep_autumn": (_swatches("Burgundy", "#800020", "Forest Green", "#228B22", "Dark Chocolate", "#3D1C02", "Burnt Orange", "#CC5500", "Deep Teal", "#014D4E", "Mustard", "#E1AD01", "Tomato Red", "#E8472F", "Aubergine", "#472C4C"), _swatches("Pastel Pink", "#FFD1DC", "Powder Blue", "#B0E0E6", "Light Grey", "#D3D3D3")),
    "deep_winter": (_swatches("Black", "#000000", "True Red", "#BF0A30", "Emerald", "#009B77", "Sapphire", "#0F52BA", "Pure White", "#FFFFFF", "Deep Plum", "#580F41", "Charcoal", "#36454F", "Icy Pink", "#F5D5E0"), _swatches("Camel", "#C19A6B", "Peach", "#FFCBA4", "Mustard", "#E1AD01")),
    "cool_winter": (_swatches("Icy Blue", "#D6ECEF", "Royal Blue", "#4169E1", "Fuchsia", "#FF00FF", "Pine Green", "#01796F", "Pure White", "#FFFFFF", "Charcoal", "#36454F", "Cherry", "#DE3163", "Amethyst", "#9966CC"), _swatches("Orange", "#FF8C00", "Camel", "#C19A6B", "Olive", "#808000")),
    "clear_winter": (_swatches("Hot Pink", "#FF69B4", "Cobalt", "#0047AB", "Emerald", "#009B77", "Lemon", "#FFF44F", "Pure White", "#FFFFFF", "Black", "#000000", "True Red", "#BF0A30", "Violet", "#8F00FF"), _swatches("Dusty Rose", "#DCAE96", "Khaki", "#C3B091", "Muted Olive", "#7C7A4D")),
}
