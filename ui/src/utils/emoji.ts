// A built-in emoji set for reactions and the composer: common emoji in a few
// categories with English and Chinese search words. Built in so the app needs
// no network and no data package; every entry is a valid reaction key
// (1–32 bytes).

export interface Emoji {
  char: string
  /** Lower-case search words. */
  words: string
}

export interface EmojiCategory {
  /** i18n key under `emoji.` */
  id: 'smileys' | 'people' | 'nature' | 'food' | 'activity' | 'travel' | 'objects' | 'symbols'
  icon: string
  emoji: Emoji[]
}

/** The quick reactions of the context menu and the hover toolbar. */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '🙏'] as const

// "char words…" per line; words separate by spaces.
const DATA: Record<EmojiCategory['id'], string> = {
  smileys: `😀 grin smile happy 笑
😃 smiley happy joy 开心
😄 smile laugh happy 大笑
😁 beaming grin teeth 嘻嘻
😆 laughing squint haha 哈哈
😅 sweat smile relief 汗
🤣 rofl rolling floor laughing 笑哭
😂 joy tears laugh lol 笑哭
🙂 slight smile 微笑
🙃 upside down silly 倒脸
😉 wink 眨眼
😊 blush smile happy 害羞
😇 halo angel innocent 天使
🥰 love hearts adore 喜爱
😍 heart eyes love 花痴
🤩 star struck wow 崇拜
😘 kiss blow 飞吻
😋 yum tasty delicious 好吃
😛 tongue playful 吐舌
😜 wink tongue crazy 调皮
🤪 zany crazy goofy 疯狂
🤗 hug hugging 拥抱
🤭 hand over mouth giggle 偷笑
🤫 shush quiet secret 嘘
🤔 thinking hmm think 思考
🤐 zipper mouth silent 闭嘴
🤨 raised eyebrow skeptical 怀疑
😐 neutral meh 面无表情
😑 expressionless 无语
😶 no mouth speechless 沉默
😏 smirk 得意
😒 unamused 不高兴
🙄 eye roll 翻白眼
😬 grimace awkward 尴尬
😌 relieved calm 放松
😔 pensive sad 沉思
😪 sleepy 困
😴 sleeping zzz 睡觉
😷 mask sick 口罩
🤒 thermometer sick ill 生病
🤯 exploding head mind blown 震惊
🥳 party celebrate 庆祝
😎 cool sunglasses 酷
🤓 nerd geek 书呆子
🧐 monocle curious 好奇
😕 confused 困惑
😟 worried 担心
🙁 frown sad 难过
😮 open mouth wow surprised 惊讶
😯 hushed surprised 吃惊
😲 astonished shocked 震惊
😳 flushed embarrassed 脸红
🥺 pleading puppy eyes 求求
😢 cry sad tear 哭
😭 sob crying loud 大哭
😱 scream fear 尖叫
😤 triumph huff 生气
😡 angry rage mad 愤怒
🤬 cursing swearing 骂人
😈 devil smiling 恶魔
💀 skull dead 骷髅
💩 poop 便便
🤡 clown 小丑
👻 ghost boo 鬼
👽 alien 外星人
🤖 robot bot 机器人`,
  people: `👍 thumbs up yes ok like agree 赞
👎 thumbs down no dislike 踩
👌 ok hand perfect 好的
✌️ victory peace 耶
🤞 fingers crossed luck 祈祷
🤟 love you gesture 爱你
🤘 rock on horns 摇滚
🤙 call me shaka 打电话
👈 point left 左
👉 point right 右
👆 point up 上
👇 point down 下
☝️ index up one 一
👋 wave hello hi bye 挥手
🤚 raised back hand 举手
✋ raised hand stop high five 停
🖖 vulcan salute 瓦肯
👏 clap applause bravo 鼓掌
🙌 raising hands hooray praise 欢呼
👐 open hands 张开双手
🤲 palms up 捧
🤝 handshake deal agree 握手
🙏 pray please thanks thank you 谢谢 拜托
✍️ writing 写
💪 muscle strong flex 加油
🧠 brain smart 大脑
👀 eyes look watching 看
👁️ eye 眼睛
🫡 salute respect 敬礼
🤷 shrug dunno 耸肩
🤦 facepalm 捂脸
🙋 raising hand question 举手
🙇 bow sorry 鞠躬
💃 dance dancer 跳舞
🕺 man dancing 跳舞
👶 baby 宝宝
🧑‍💻 technologist developer coder 程序员
🧑‍🎨 artist designer 设计师
🧑‍🚀 astronaut 宇航员
🧑‍🍳 cook chef 厨师
🦸 superhero hero 英雄`,
  nature: `🐶 dog puppy 狗
🐱 cat kitten 猫
🐭 mouse 老鼠
🐰 rabbit bunny 兔子
🦊 fox 狐狸
🐻 bear 熊
🐼 panda 熊猫
🐨 koala 考拉
🐯 tiger 老虎
🦁 lion 狮子
🐮 cow 牛
🐷 pig 猪
🐸 frog 青蛙
🐵 monkey 猴子
🐔 chicken 鸡
🐧 penguin 企鹅
🐦 bird 鸟
🦆 duck 鸭子
🦉 owl 猫头鹰
🐝 bee honey 蜜蜂
🦋 butterfly 蝴蝶
🐢 turtle slow 乌龟
🐍 snake python 蛇
🦀 crab rust ferris 螃蟹
🐙 octopus 章鱼
🐳 whale 鲸鱼
🐬 dolphin 海豚
🌵 cactus 仙人掌
🌲 tree evergreen 树
🌴 palm tree 棕榈
🍀 clover luck 幸运草
🌸 cherry blossom flower 樱花
🌹 rose flower 玫瑰
🌻 sunflower 向日葵
🌞 sun face 太阳
🌙 moon night 月亮
⭐ star 星星
🌈 rainbow 彩虹
⚡ lightning zap fast 闪电
❄️ snow cold 雪花
🔥 fire hot lit 火
💧 droplet water 水滴
🌊 wave ocean 海浪`,
  food: `🍎 apple 苹果
🍊 orange 橙子
🍋 lemon 柠檬
🍌 banana 香蕉
🍉 watermelon 西瓜
🍇 grapes 葡萄
🍓 strawberry 草莓
🍑 peach 桃子
🍒 cherries 樱桃
🥑 avocado 牛油果
🌶️ hot pepper spicy 辣椒
🥕 carrot 胡萝卜
🍞 bread 面包
🧀 cheese 奶酪
🍳 egg cooking 煎蛋
🍔 burger hamburger 汉堡
🍟 fries 薯条
🍕 pizza 披萨
🌮 taco 玉米卷
🍜 noodles ramen 面条
🍣 sushi 寿司
🥟 dumpling 饺子
🍚 rice 米饭
🍰 cake 蛋糕
🎂 birthday cake 生日
🍩 donut 甜甜圈
🍪 cookie 饼干
🍫 chocolate 巧克力
🍿 popcorn 爆米花
☕ coffee 咖啡
🍵 tea 茶
🧋 bubble tea boba 奶茶
🍺 beer 啤酒
🍻 cheers beers 干杯
🥂 champagne toast 干杯
🍷 wine 红酒`,
  activity: `🎉 party tada celebrate congrats 庆祝
🎊 confetti 彩带
🎈 balloon 气球
🎁 gift present 礼物
🏆 trophy win 奖杯
🥇 gold medal first 金牌
⚽ soccer football 足球
🏀 basketball 篮球
🎾 tennis 网球
🏓 ping pong 乒乓球
🎮 video game 游戏
🎲 dice 骰子
🎯 target bullseye 靶心
🎨 art palette 艺术
🎬 movie film 电影
🎵 music note 音乐
🎸 guitar 吉他
🎤 microphone karaoke 麦克风
🎧 headphones 耳机
🚴 cycling bike 骑车
🏃 running run 跑步
🧘 yoga meditate 冥想`,
  travel: `🚀 rocket launch ship 火箭
✈️ airplane flight 飞机
🚗 car 汽车
🚕 taxi 出租车
🚌 bus 公交
🚲 bicycle 自行车
🚄 train fast 高铁
🚢 ship boat 轮船
🏠 house home 家
🏢 office building 办公楼
🏖️ beach vacation 海滩
⛰️ mountain 山
🗺️ map 地图
🧭 compass 指南针
🌍 earth globe world 地球
🗽 statue of liberty 自由女神
🏯 castle 城堡
⛺ tent camping 露营
🌅 sunrise 日出
🌃 night city 夜景`,
  objects: `💡 idea bulb 想法
📌 pin pushpin 图钉
📎 paperclip attach 回形针
📝 memo note 笔记
📅 calendar date 日历
📈 chart up growth 上涨
📉 chart down 下跌
📊 bar chart stats 图表
💻 laptop computer 电脑
⌨️ keyboard 键盘
🖥️ desktop 台式机
📱 phone mobile 手机
☎️ telephone 电话
🔋 battery 电池
🔌 plug 插头
🔒 lock secure 锁
🔑 key 钥匙
🔨 hammer 锤子
🔧 wrench fix 扳手
⚙️ gear settings 齿轮
🧪 test tube experiment 实验
🐛 bug 虫子
📦 package box ship 包裹
📣 megaphone announce 喇叭
🔔 bell notification 铃铛
⏰ alarm clock 闹钟
⏳ hourglass wait 沙漏
💰 money bag 钱
💎 gem diamond 钻石
📚 books 书
✉️ envelope mail 信封
🎓 graduation 毕业`,
  symbols: `❤️ heart love red 爱心
🧡 orange heart 橙心
💛 yellow heart 黄心
💚 green heart 绿心
💙 blue heart 蓝心
💜 purple heart 紫心
🖤 black heart 黑心
🤍 white heart 白心
💔 broken heart 心碎
💕 two hearts 两颗心
💯 hundred perfect 一百分
✅ check done yes 完成
☑️ ballot box check 勾选
✔️ check mark 对勾
❌ cross no wrong 错
❗ exclamation important 感叹号
❓ question 问号
⚠️ warning 警告
🚫 prohibited no 禁止
⛔ no entry 禁止进入
🆗 ok button 好
🆕 new 新
🔝 top 顶
➕ plus add 加
➖ minus 减
➡️ right arrow 右箭头
⬅️ left arrow 左箭头
🔁 repeat 重复
🔄 refresh sync 刷新
💬 speech bubble comment 评论
💭 thought bubble 想法
✨ sparkles shiny new 闪亮
💥 boom collision 爆炸
💤 zzz sleep 睡觉
🟢 green circle 绿
🟡 yellow circle 黄
🔴 red circle 红`,
}

const ICONS: Record<EmojiCategory['id'], string> = {
  smileys: '😀', people: '👋', nature: '🌸', food: '🍜', activity: '🎉', travel: '🚀', objects: '💡', symbols: '❤️',
}

function parse(block: string): Emoji[] {
  return block.split('\n').map((line) => {
    const [char, ...words] = line.trim().split(/\s+/)
    return { char, words: words.join(' ').toLowerCase() }
  })
}

export const EMOJI_CATEGORIES: EmojiCategory[] = (Object.keys(DATA) as EmojiCategory['id'][]).map((id) => ({
  id,
  icon: ICONS[id],
  emoji: parse(DATA[id]),
}))

const ALL: Emoji[] = (() => {
  const seen = new Set<string>()
  const out: Emoji[] = []
  for (const c of EMOJI_CATEGORIES) {
    for (const e of c.emoji) {
      if (!seen.has(e.char)) {
        seen.add(e.char)
        out.push(e)
      }
    }
  }
  return out
})()

/** Emoji whose words start with (or, failing that, contain) every word of `query`. */
export function searchEmoji(query: string, limit = 64): Emoji[] {
  const words = query.trim().toLowerCase().split(/\s+/).filter(Boolean)
  if (words.length === 0) return []
  const starts = (e: Emoji, w: string) => e.words.split(' ').some((x) => x.startsWith(w))
  const hits = ALL.filter((e) => words.every((w) => e.words.includes(w)))
  return hits.sort((a, b) => Number(words.every((w) => starts(b, w))) - Number(words.every((w) => starts(a, w)))).slice(0, limit)
}

const RECENT_KEY = 'courier.recentEmoji'
const RECENT_MAX = 16

/** Recently used emoji, newest first (kept in localStorage; empty where unavailable). */
export function recentEmoji(): string[] {
  try {
    const v = JSON.parse(localStorage.getItem(RECENT_KEY) ?? '[]')
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string').slice(0, RECENT_MAX) : []
  } catch {
    return []
  }
}

export function noteEmojiUsed(char: string): void {
  try {
    const next = [char, ...recentEmoji().filter((c) => c !== char)].slice(0, RECENT_MAX)
    localStorage.setItem(RECENT_KEY, JSON.stringify(next))
  } catch {
    // Private mode or no storage: recents are a nicety.
  }
}
