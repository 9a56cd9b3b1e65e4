"""Make the shipped CJK font: a small subset of Noto Sans CJK SC (SIL Open Font License 1.1).

Matplotlib's default font (DejaVu Sans) has no Chinese glyphs, so without help every Chinese
label in a figure is an empty box. ``prodgen.viz`` registers ``ProdgenSansSC-Regular.otf``
(this folder) as a fallback font instead of asking students to install one.

The subset holds every Chinese character the course can draw today, found by scanning the
package's sources (catalog vocabulary, description templates, text phrasings, future studio
labels: any CJK character in ``prodgen/**/*.py``) and the lessons (``solutions/*.ipynb``, every
cell), plus CJK punctuation and the words in :data:`MARGIN` (what the upcoming lessons 08-12,
the studio and a small "bring your own catalog" are likely to write). ``tests/test_viz.py``
fails when a character the course uses is missing; then rebuild, from the repository root::

    apt-get install fonts-noto-cjk          # Debian/Ubuntu: the source font (or pass --source)
    python -m prodgen.fonts.build           # rewrites prodgen/fonts/ProdgenSansSC-Regular.otf

It needs fontTools, which matplotlib already depends on. The output is a CFF OpenType font
without hinting or layout tables (matplotlib uses neither for CJK). It is a Modified Version
under the OFL, so it carries its own family name, "Prodgen Sans SC"; ``OFL.txt`` beside it is
the licence. Tooling, not used by the lessons.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
FONT_FILE = FOLDER / "ProdgenSansSC-Regular.otf"
FAMILY = "Prodgen Sans SC"
POSTSCRIPT_NAME = "ProdgenSansSC-Regular"
DEFAULT_SOURCE = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
SOURCE_FAMILY = "Noto Sans CJK SC"

# Characters that DejaVu Sans cannot draw and the course may write: CJK radicals, symbols and
# punctuation, kana, ideographs, compatibility ideographs, full-width forms.
CJK = re.compile(r"[\u2e80-\u2fdf\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]")

PUNCTUATION = "，。、：；！？（）“”‘’《》【】「」…—·～　"

# Words the next lessons and a designer's own catalog are likely to need, so that adding a label
# rarely means rebuilding the font. Grouped by where they would appear (the last two lines: ad headlines,
# prodgen ads, lesson 16); about 490 characters, about 85 KB of the file.
MARGIN = """
评估 真实 生成 图像 图片 照片 模型 样本 距离 精确率 召回率 准确率 多样性 覆盖率 密度 记忆 复制
排行榜 分数 得分 指标 控制 条件 无条件 训练集 测试集 验证集 未见过的组合 最好 最差 平均 误差 偏差 速度 每秒
工作室 设计师 选择 滑块 随机 种子 截断 插值 方向 潜在空间 按钮 下载 保存 重置 输入 输出 语言 中文 英文
属性 类别 数量 批量 结果 请求 未指定 任意 全部 稳定 损失 判别器 生成器 梯度 惩罚 谱归一化 模式崩溃
增强 步数 轮次 学习率 扩散 噪声 去噪 引导 强度 无分类器 修复 编辑 遮罩 原图 重建 改色 换品牌
自己的目录 商品 产品 数据 文件 列名 模型卡 检查 错误 未知 有效 无效 缺少
白色 灰色 银色 金色 米色 卡其色 酒红色 天蓝色 深色 浅色 亮 暗 透明 彩色 多色
衬衫 外套 夹克 裤子 裙子 连衣裙 袜子 靴子 凉鞋 拖鞋 手表 眼镜 围巾 手套 钱包 椅子 沙发 枕头 碗 盘子
手机 耳机 电脑 键盘 鼠标 棉 麻 丝 羊毛 皮革 塑料 金属 木头 玻璃 陶瓷 男士 女士 儿童 新款 旧
零 一 二 三 四 五 六 七 八 九 十 百 千 万 两 第 件 个 双 只 张 把 套 次 秒 分钟 小时 天
了 在 和 与 或 不 没 也 都 很 更 那 哪 什么 怎么 为什么 吗 呢 吧 你 他 她 它 们 上 下 左 右 前 后 里 外
对 好 坏 多 少 高 低 长 宽 窄 图表 行 每 价格 元 新 示例 提示 标题 描述 真假 是否
立即购买 选购 抢购 了解更多 查看详情 限时 特价 优惠 折扣 促销 秒杀 热卖 爆款 包邮 正品 满减 券 专享 会员 精选 必备
新品上市 上新 现价 原价 仅售 起 春季 夏季 秋季 冬季 新年 节日 礼物 送礼 舒适 时尚 经典 简约 轻便 耐用 防水 保暖 透气
"""


def course_characters(root: Path) -> set[str]:
    """CJK characters in the package sources and every lesson cell under ``root``."""
    found: set[str] = set()
    for path in sorted((root / "prodgen").rglob("*.py")):
        if path.parent.name != "fonts":  # this script's own lists are not course text
            found.update(CJK.findall(path.read_text(encoding="utf-8")))
    for path in sorted((root / "solutions").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
            source = cell.get("source", "")
            found.update(CJK.findall(source if isinstance(source, str) else "".join(source)))
    return found


def wanted_characters(root: Path) -> set[str]:
    """What the subset must hold: the course's characters, CJK punctuation and the margin."""
    return course_characters(root) | set(PUNCTUATION) | set(CJK.findall(MARGIN))


def _rename(font) -> None:
    """Give the Modified Version its own names (OFL condition 3), keeping copyright and licence."""
    name = font["name"]
    keep = {0, 7, 8, 9, 11, 12, 13, 14}
    name.names = [record for record in name.names if record.nameID in keep]
    version = font["head"].fontRevision
    for name_id, text in {
        1: FAMILY,
        2: "Regular",
        3: f"{version:.3f};{POSTSCRIPT_NAME}",
        4: f"{FAMILY} Regular",
        5: f"Version {version:.3f}; subset of {SOURCE_FAMILY} for the prodgen course",
        6: POSTSCRIPT_NAME,
        10: f"A subset of {SOURCE_FAMILY} (Noto CJK, SIL Open Font License 1.1) made by prodgen/fonts/build.py",
    }.items():
        name.setName(text, name_id, 3, 1, 0x409)  # Windows, Unicode BMP, English
    cff = font["CFF "].cff
    cff.fontNames = [POSTSCRIPT_NAME]
    top = cff.topDictIndex[0]
    for attribute in ("FullName", "FamilyName"):
        if hasattr(top, attribute):
            setattr(top, attribute, FAMILY if attribute == "FamilyName" else f"{FAMILY} Regular")


def _face_index(source: Path) -> int:
    """Which face of a collection is Noto Sans CJK SC (0 for a single font file)."""
    from fontTools.ttLib import TTCollection

    if source.suffix.lower() not in (".ttc", ".otc"):
        return 0
    faces = TTCollection(str(source), lazy=True).fonts
    for i, face in enumerate(faces):
        if face["name"].getDebugName(1) == SOURCE_FAMILY:
            return i
    raise ValueError(f"{source} holds no {SOURCE_FAMILY!r} face")


def build(source: Path | str = DEFAULT_SOURCE, output: Path | str = FONT_FILE, root: Path | None = None) -> dict:
    """Write the subset to ``output`` (atomically); returns what went in."""
    from fontTools import subset

    source, output = Path(source), Path(output)
    if not source.is_file():
        raise FileNotFoundError(
            f"source font {source} not found: install Debian's fonts-noto-cjk or pass --source with a "
            f"file holding {SOURCE_FAMILY} (NotoSansCJK-Regular.ttc or NotoSansCJKsc-Regular.otf)"
        )
    root = Path(root) if root is not None else FOLDER.parent.parent
    chars = wanted_characters(root)
    options = subset.Options()
    options.font_number = _face_index(source)
    options.layout_features = []  # matplotlib does no CJK shaping
    options.hinting = False  # matplotlib auto-hints by default (rcParams["text.hinting"])
    options.desubroutinize = True  # smaller once there are few glyphs
    options.name_IDs = ["*"]
    options.notdef_outline = True
    font = subset.load_font(str(source), options, lazy=False)
    font.recalcTimestamp = False  # keep the source's date: the same inputs give the same bytes
    missing = sorted(c for c in chars if ord(c) not in font.getBestCmap())
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(chars)))
    subsetter.subset(font)
    _rename(font)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        subset.save_font(font, str(tmp), options)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return {"characters": len(chars), "missing_in_source": "".join(missing), "bytes": output.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prodgen.fonts.build", description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE,
                        help=f"font file with {SOURCE_FAMILY} (default: %(default)s)")
    parser.add_argument("--output", default=str(FONT_FILE), help="where to write the subset (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        info = build(args.source, args.output)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {info['characters']} characters, {info['bytes'] / 1024:.0f} KB")
    if info["missing_in_source"]:
        print(f"not in the source font (left out): {info['missing_in_source']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
